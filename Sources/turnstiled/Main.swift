#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import TurnstileConfigFile
import TurnstileCore
import TurnstileProtocol
import TurnstileServer

/// `turnstiled`: the permit broker daemon (README, "The CLI").
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
            """,
        version: TurnstileVersion.current)

    @Option(help: "The TOML config file.") var config: String?
    @Option(help: "The Unix socket path.") var socket: String?
    @Option(name: .customLong("state-dir"), help: "Where leases, fences and counts are saved.") var stateDirectory: String?
    @Option(name: .customLong("pause-dir"), help: "Where pause flag files live.") var pauseDirectory: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"
    @Option(name: .customLong("process-watch"),
            help: "How holder processes are watched: pidfd (at once; the default, with poll as fallback) or poll (every 100 ms).")
    var processWatch: String = ProcessWatchMethod.pidfd.rawValue
    @Option(name: .customLong("check-config"), help: "Validate this config file and exit: 0 if valid, 64 with the error if not.")
    var checkConfig: String?

    func validate() throws {
        guard Logger.Level(rawValue: logLevel.lowercased()) != nil else {
            throw ValidationError("unknown log level \(logLevel)")
        }
        guard ProcessWatchMethod(rawValue: processWatch) != nil else {
            throw ValidationError("unknown process watch \(processWatch): pidfd or poll")
        }
    }

    func run() throws {
        if let checkConfig {
            switch ConfigFile.load(checkConfig) {
            case .success:
                print("\(checkConfig): valid")
                return
            case .failure(let error):
                report("invalid config: \(error)")
                throw ExitCode(64)
            }
        }
        let level = Logger.Level(rawValue: logLevel.lowercased())!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "turnstiled")
        let environment = DefaultPaths.processEnvironment()
        // Without --config the default file is optional: read if it exists, now or at a reload.
        let configPath = config ?? DefaultPaths.configFile(environment)
        let configIsOptional = config == nil
        var parsed = TurnstileConfig()
        if !configIsOptional || access(configPath, F_OK) == 0 {
            switch ConfigFile.load(configPath) {
            case .success(let loaded): parsed = loaded
            case .failure(let error): fail("invalid config: \(error)")
            }
        }
        var settings = ServerSettings(config: parsed, configPath: configPath, configIsOptional: configIsOptional, socket: socket,
                                      stateDirectory: stateDirectory, pauseDirectory: pauseDirectory,
                                      environment: environment)
        settings.processWatch = ProcessWatchMethod(rawValue: processWatch)!
        if let conflict = settings.directoryConflict { fail("invalid directories: \(conflict)") }
        do {
            settings.systemd = try Systemd.fromEnvironment()
        } catch {
            fail("\(error)")
        }
        do {
            let server = try Server(settings: settings, logger: logger)
            try server.run()
        } catch {
            fail("\(error)")
        }
    }

    private func fail(_ message: String) -> Never {
        report(message)
        Glibc.exit(1)
    }

    private func report(_ message: String) {
        let line = "turnstiled: \(message)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    }
}
