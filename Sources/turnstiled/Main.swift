#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import TurnstileConfigFile
import TurnstileCore
import TurnstileProtocol
import TurnstileServer

/// `turnstiled`: the permit broker daemon (SPEC §8).
@main
struct Turnstiled: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turnstiled",
        abstract: "The Turnstile permit broker: a sidecar on a Unix socket speaking NDJSON.",
        discussion: """
            With no flags it runs on its embedded defaults: socket $XDG_RUNTIME_DIR/turnstile.sock \
            (or /tmp/turnstile-<uid>/turnstile.sock), state in $XDG_STATE_HOME/turnstile (or \
            ~/.local/state/turnstile), pause flags in <state dir>/pause, and the config file \
            $XDG_CONFIG_HOME/turnstile/turnstile.toml if it exists. TURNSTILE_SOCKET names the socket. \
            SIGTERM or SIGINT stop it gracefully (exit 0); SIGHUP reloads the config.
            """)

    @Option(help: "The TOML config file.") var config: String?
    @Option(help: "The Unix socket path.") var socket: String?
    @Option(name: .customLong("state-dir"), help: "Where leases, fences and counts are saved.") var stateDirectory: String?
    @Option(name: .customLong("pause-dir"), help: "Where pause flag files live.") var pauseDirectory: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"
    @Option(name: .customLong("process-watch"),
            help: "How holder processes are watched: pidfd (at once; the default, with poll as fallback) or poll (every 100 ms).")
    var processWatch: String = ProcessWatchMethod.pidfd.rawValue

    func validate() throws {
        guard Logger.Level(rawValue: logLevel.lowercased()) != nil else {
            throw ValidationError("unknown log level \(logLevel)")
        }
        guard ProcessWatchMethod(rawValue: processWatch) != nil else {
            throw ValidationError("unknown process watch \(processWatch): pidfd or poll")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel.lowercased())!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "turnstiled")
        let environment = DefaultPaths.processEnvironment()
        var configPath = config
        if configPath == nil {
            let candidate = DefaultPaths.configFile(environment)
            if access(candidate, F_OK) == 0 { configPath = candidate }
        }
        var parsed = TurnstileConfig()
        if let configPath {
            switch ConfigFile.load(configPath) {
            case .success(let loaded): parsed = loaded
            case .failure(let error): fail("invalid config: \(error)")
            }
        }
        var settings = ServerSettings(config: parsed, configPath: configPath, socket: socket,
                                      stateDirectory: stateDirectory, pauseDirectory: pauseDirectory,
                                      environment: environment)
        settings.processWatch = ProcessWatchMethod(rawValue: processWatch)!
        if let conflict = settings.directoryConflict { fail("invalid directories: \(conflict)") }
        do {
            let server = try Server(settings: settings, logger: logger)
            try server.run()
        } catch {
            fail("\(error)")
        }
    }

    private func fail(_ message: String) -> Never {
        let line = "turnstiled: \(message)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        Glibc.exit(1)
    }
}
