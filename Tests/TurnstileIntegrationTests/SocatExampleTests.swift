import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// `examples/socat/`: the shell helpers, run by /bin/sh with the real socat against a real
/// daemon.
@Suite("socat examples", .timeLimit(.minutes(1)))
struct SocatExampleTests {
    static let examples = Binaries.packageRoot + "/examples/socat"

    /// Runs a shell snippet with the helpers sourced and TURNSTILE_SOCKET set.
    static func shell(_ daemon: Daemon, _ script: String) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        let process = try ChildProcess(["/bin/sh", "-c", ". \(examples)/turnstile.sh\n" + script], environment: environment)
        return process
    }

    @Test func acquireHeartbeatReleaseFromTheShell() throws {
        let daemon = try Daemon()
        let run = try Self.shell(daemon, """
            token=$(ts_acquire '"project":"alpha","mode":"issue","holder":"sh"') || exit 9
            echo "token=$token"
            ts_heartbeat "$token" && echo heartbeat-ok
            ts_request '{"op":"status"}' | grep -q '"holder":"sh"' && echo listed
            ts_release "$token" && echo released
            ts_release "$token" || echo released-twice-fails
            """)
        _ = run.waitForExit()
        #expect(run.exitCode == 0, "\(run.output)")
        #expect(run.output.contains("heartbeat-ok") && run.output.contains("listed") && run.output.contains("released\n"))
        #expect(run.output.contains("released-twice-fails"))
        let token = run.output.split(separator: "\n").first { $0.hasPrefix("token=") }?.dropFirst(6) ?? ""
        #expect(token.count == 32)
        #expect(try daemon.client().ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 0)
    }

    @Test func aWaitingAcquireOverSocatIsAnsweredWhenGranted() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let holder = try daemon.client()
        let held = try holder.ask("acquire")
        let waiter = try Self.shell(daemon, """
            token=$(ts_acquire '"wait_ms":30000') || exit 9
            echo "granted $token"
            """)
        var queued: Int64? = 0
        for _ in 0..<10_000 where queued != 1 {
            queued = try holder.ask("status")["global"]?.objectValue?["waiting"]?.numberValue?.int64
        }
        #expect(queued == 1, "socat's half-closed connection keeps its place in the queue")
        _ = try holder.ask("release", [("lease", held["lease"]!)])
        _ = waiter.waitForExit()
        #expect(waiter.exitCode == 0, "\(waiter.output)")
        #expect(waiter.output.contains("granted "))
        #expect(try holder.ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 1, "a detached lease")
    }

    @Test func withPermitRunsTheCommandUnderAPermitAndPassesItsStatusOn() throws {
        let daemon = try Daemon()
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        let run = try ChildProcess([Self.examples + "/with-permit.sh", "-p", "beta", "-m", "mention", "-h", "wrapped", "--",
                                    "/bin/sh", "-c", ". \(Self.examples)/turnstile.sh; ts_request '{\"op\":\"status\"}'; exit 3"],
                                   environment: environment)
        _ = run.waitForExit()
        #expect(run.exitCode == 3, "the command's own status")
        #expect(run.output.contains(#""holder":"wrapped""#), "the permit was held while it ran")
        #expect(run.output.contains(#""project":"beta""#))
        #expect(try daemon.client().ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 0, "released after")
    }

    @Test func withPermitExits75WhenNoPermitComes() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 0\n")
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        let run = try ChildProcess([Self.examples + "/with-permit.sh", "-w", "100", "--", "/bin/echo", "never"], environment: environment)
        _ = run.waitForExit()
        #expect(run.exitCode == 75)
        #expect(!run.output.contains("never"))
        #expect(run.output.contains(#""error":"timeout""#))
    }

    @Test func withPermitExits69WithoutADaemon() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = try Daemon.makeTemporaryDirectory() + "/nobody.sock"
        let run = try ChildProcess([Self.examples + "/with-permit.sh", "--", "/bin/echo", "never"], environment: environment)
        _ = run.waitForExit()
        #expect(run.exitCode == 69, "\(run.output)")
        #expect(!run.output.contains("never"))
        #expect(run.output.contains("is turnstiled running"))
    }

    @Test func withPermitHeartbeatsACommandThatOutlivesItsTTL() throws {
        let daemon = try Daemon()
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        // A 1-second lease held for 2.5 seconds: only the heartbeat loop keeps it.
        let run = try ChildProcess([Self.examples + "/with-permit.sh", "-t", "1000", "-h", "long", "--", "sleep", "2.5"],
                                   environment: environment)
        _ = run.waitForExit()
        #expect(run.exitCode == 0, "\(run.output)")
        let ended = try watcher.waitForEvent("released")
        #expect(ended?["holder"]?.stringValue == "long", "released at the end, not expired on the way")
        #expect(ended?["cause"]?.stringValue == "released" || ended?["cause"]?.stringValue == "process_exited")
    }

    @Test func withPermitReleasesWhenKilled() throws {
        let daemon = try Daemon()
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let run = try ChildProcess([Self.examples + "/with-permit.sh", "-h", "doomed", "--", "sleep", "600"], environment: environment)
        let granted = try watcher.waitForEvent("granted")
        #expect(granted?["holder"]?.stringValue == "doomed")
        run.signal(SIGKILL)
        let released = try watcher.waitForEvent("released")
        #expect(released?["cause"]?.stringValue == "process_exited", "the lease was bound to the script's pid")
    }
}
