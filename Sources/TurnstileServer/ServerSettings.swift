#if canImport(Glibc)
import Glibc
#endif
import TurnstileCore
import TurnstileProtocol

/// Where the daemon lives and with what config: the config file's contents plus the paths
/// resolved from flags, environment and defaults (README, "The CLI"). Flags win over the environment,
/// which wins over the file, which wins over the embedded defaults.
public struct ServerSettings: Sendable {
    /// The parsed config.
    public var config: TurnstileConfig
    /// The config file to re-read on `reload`, if any.
    public var configPath: String?
    /// Whether the config file may be absent (the default path, not `--config`): then the
    /// embedded defaults apply while it is, and a `reload` reads it once it exists.
    public var configIsOptional = false
    /// The socket path.
    public var socketPath: String
    /// The state directory.
    public var stateDirectory: String
    /// The pause flag directory.
    public var pauseDirectory: String
    /// The daemon's version string.
    public var version = TurnstileVersion.current
    /// How holder processes are watched.
    public var processWatch = ProcessWatchMethod.pidfd
    /// What systemd passed: a listening socket, a notification socket (both optional).
    public var systemd: Systemd?

    /// Which config file the running config came from, for the ready line.
    public var loadedConfigDescription: String {
        guard let configPath else { return "none (embedded defaults)" }
        if configIsOptional && access(configPath, F_OK) != 0 {
            return "none (embedded defaults; \(configPath) is read by reload once it exists)"
        }
        return configPath
    }

    /// Resolves paths.
    /// - Parameters:
    ///   - config: the parsed config (the embedded defaults when there is no file).
    ///   - configPath: the file it came from.
    ///   - configIsOptional: whether that file may be absent (the default path).
    ///   - socket: `--socket`, if given.
    ///   - stateDirectory: `--state-dir`, if given.
    ///   - pauseDirectory: `--pause-dir`, if given.
    ///   - environment: the process environment.
    public init(config: TurnstileConfig, configPath: String?, configIsOptional: Bool = false, socket: String?,
                stateDirectory: String?, pauseDirectory: String?, environment: [String: String]) {
        self.config = config
        self.configPath = configPath
        self.configIsOptional = configIsOptional
        let fromEnvironment = environment["TURNSTILE_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        var withoutNamedSocket = environment
        withoutNamedSocket["TURNSTILE_SOCKET"] = nil
        self.socketPath = socket ?? fromEnvironment ?? config.socketPath ?? DefaultPaths.socket(withoutNamedSocket)
        let state = stateDirectory ?? config.stateDirectory ?? DefaultPaths.stateDirectory(environment)
        self.stateDirectory = state
        self.pauseDirectory = pauseDirectory ?? config.pauseDirectory ?? state + "/pause"
    }
}

/// How the daemon learns that a lease's process died: a pidfd per process (at once), or a
/// check every 100 ms for kernels and sandboxes without `pidfd_open` (the daemon falls back to
/// it by itself when pidfd fails; `--process-watch poll` chooses it from the start).
public enum ProcessWatchMethod: String, Sendable, CaseIterable {
    case pidfd, poll
}
