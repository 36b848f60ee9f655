#if canImport(Glibc)
import Glibc
#endif
import TurnstileCore

/// Where the daemon lives and with what config: the config file's contents plus the paths
/// resolved from flags, environment and defaults (SPEC §8). Flags win over the environment,
/// which wins over the file, which wins over the embedded defaults.
public struct ServerSettings: Sendable {
    /// The parsed config.
    public var config: TurnstileConfig
    /// The config file to re-read on `reload`, if any.
    public var configPath: String?
    /// The socket path.
    public var socketPath: String
    /// The state directory.
    public var stateDirectory: String
    /// The pause flag directory.
    public var pauseDirectory: String
    /// The daemon's version string.
    public var version = "0.1.0"

    /// Resolves paths.
    /// - Parameters:
    ///   - config: the parsed config (the embedded defaults when there is no file).
    ///   - configPath: the file it came from.
    ///   - socket: `--socket`, if given.
    ///   - stateDirectory: `--state-dir`, if given.
    ///   - pauseDirectory: `--pause-dir`, if given.
    ///   - environment: the process environment.
    public init(config: TurnstileConfig, configPath: String?, socket: String?, stateDirectory: String?,
                pauseDirectory: String?, environment: [String: String]) {
        self.config = config
        self.configPath = configPath
        self.socketPath = socket ?? environment["TURNSTILE_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
            ?? config.socketPath ?? Self.defaultSocketPath(environment)
        let state = stateDirectory ?? config.stateDirectory ?? Self.defaultStateDirectory(environment)
        self.stateDirectory = state
        self.pauseDirectory = pauseDirectory ?? config.pauseDirectory ?? state + "/pause"
    }

    /// `$XDG_RUNTIME_DIR/turnstile.sock`, or `/tmp/turnstile-<uid>/turnstile.sock`.
    public static func defaultSocketPath(_ environment: [String: String]) -> String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/turnstile.sock" }
        return "/tmp/turnstile-\(getuid())/turnstile.sock"
    }

    /// `$XDG_STATE_HOME/turnstile`, or `~/.local/state/turnstile`.
    public static func defaultStateDirectory(_ environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty { return state + "/turnstile" }
        return (environment["HOME"] ?? "/tmp") + "/.local/state/turnstile"
    }

    /// `$XDG_CONFIG_HOME/turnstile/turnstile.toml`, or `~/.config/turnstile/turnstile.toml`.
    public static func defaultConfigPath(_ environment: [String: String]) -> String {
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty { return config + "/turnstile/turnstile.toml" }
        return (environment["HOME"] ?? "/tmp") + "/.config/turnstile/turnstile.toml"
    }
}
