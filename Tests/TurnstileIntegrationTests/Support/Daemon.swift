import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Where the built executables are: next to the test bundle.
enum Binaries {
    static let directory: String = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (executable as NSString).deletingLastPathComponent
    }()
    static var turnstiled: String { directory + "/turnstiled" }
    static var turnstile: String { directory + "/turnstile" }
    /// The package's root (for `examples/` and `protocol/`).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()
}

/// A real `turnstiled` on a socket in its own temporary directory, started and stopped by a
/// test. Readiness is its "ready" log line; its log is kept for assertions.
final class Daemon: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let stateDirectory: String
    let pauseDirectory: String
    let configPath: String
    private(set) var process: ChildProcess?

    /// Writes `config` and starts the daemon.
    init(config: String = "", extraArguments: [String] = []) throws {
        directory = try Self.makeTemporaryDirectory()
        socketPath = directory + "/t.sock"
        stateDirectory = directory + "/state"
        pauseDirectory = directory + "/state/pause"
        configPath = directory + "/turnstile.toml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        try start(extraArguments: extraArguments)
    }

    /// A fresh directory private to the test (mode 0700), short enough for a socket path.
    static func makeTemporaryDirectory() throws -> String {
        let template = "/tmp/tsd-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw POSIXError(.EIO) }
        return String(cString: made)
    }

    /// The logs of earlier runs (before a restart).
    private(set) var earlierLogs = ""

    /// Starts (or restarts) the process and waits for it to be ready.
    func start(extraArguments: [String] = []) throws {
        if let previous = self.process { earlierLogs += previous.output }
        let process = try ChildProcess(
            [Binaries.turnstiled, "--config", configPath, "--socket", socketPath, "--state-dir", stateDirectory,
             "--log-level", "debug"] + extraArguments)
        self.process = process
        guard process.waitForOutput("turnstiled ready") else {
            throw DaemonError(message: "turnstiled did not become ready:\n\(process.output)")
        }
    }

    /// Starts a bare `turnstiled` (no `--config`) on `<directory>/t.sock` with state in
    /// `<directory>/state` and the environment given, and waits for its ready line: for tests
    /// of what the environment changes (XDG paths, LD_PRELOAD, NOTIFY_SOCKET). The caller stops it.
    static func startBare(in directory: String, environment: [String: String]) throws -> ChildProcess {
        let process = try ChildProcess([Binaries.turnstiled, "--socket", directory + "/t.sock", "--state-dir", directory + "/state"],
                                       environment: environment)
        guard process.waitForOutput("turnstiled ready") else {
            process.signal(SIGKILL)
            _ = process.waitForExit()
            throw DaemonError(message: "turnstiled did not become ready:\n\(process.output)")
        }
        return process
    }

    /// Connects a client.
    func client() throws -> TurnstileClient { try TurnstileClient(socketPath: socketPath) }

    /// The daemon's log so far (the current run).
    var log: String { process?.output ?? "" }

    /// Waits until the current run's log shows `text`: the log arrives through a pipe, so a
    /// line the daemon wrote before an effect the test saw may not have been read yet.
    func logShows(_ text: String, milliseconds: Int = 10_000) -> Bool {
        process?.waitForOutput(text, milliseconds: milliseconds) ?? false
    }

    /// Every run's log.
    var fullLog: String { earlierLogs + log }

    /// Stops it with SIGTERM and returns its exit code.
    @discardableResult
    func stop() -> Int32? {
        guard let process else { return nil }
        process.signal(SIGTERM)
        if process.waitForExit(milliseconds: 10_000) == nil {
            process.signal(SIGKILL)
            _ = process.waitForExit()
            return nil
        }
        return process.exitCode
    }

    /// Kills it with SIGKILL (a crash).
    func crash() {
        process?.signal(SIGKILL)
        _ = process?.waitForExit()
    }

    /// Replaces the config file.
    func writeConfig(_ text: String) throws {
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        if let process, process.waitForExit(milliseconds: 0) == nil {
            process.signal(SIGKILL)
            _ = process.waitForExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct DaemonError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension TurnstileClient {
    /// `call` with a 10 s limit, so a missing answer fails the test instead of hanging it.
    func ask(_ op: String, _ fields: [(String, JSONValue)] = []) throws -> Answer {
        try call(op, fields, timeoutMilliseconds: 10_000)
    }

    /// The next event, within `milliseconds`.
    func event(within milliseconds: Int32 = 10_000) throws -> JSONObject? {
        try nextEvent(timeoutMilliseconds: milliseconds)
    }

    /// Waits for a watch event named `name`, skipping others.
    func waitForEvent(_ name: String, within milliseconds: Int32 = 10_000) throws -> JSONObject? {
        let deadline = SocketStream.monotonicMilliseconds() + Int64(milliseconds)
        while true {
            let left = Int32(clamping: max(0, deadline - SocketStream.monotonicMilliseconds()))
            guard let event = try nextEvent(timeoutMilliseconds: left) else { return nil }
            if event["event"]?.stringValue == name { return event }
        }
    }
}
