import CLibUV
import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// `turnstile run` (README, "The CLI") against a real daemon: exit codes, environment, signals, a lost
/// lease, a daemon restart, the terminal.
@Suite("turnstile run", .timeLimit(.minutes(1)))
struct CLIRunTests {
    /// Starts `turnstile ARGS…` against the daemon.
    static func turnstile(_ daemon: Daemon?, _ arguments: [String], stdin: Int32? = nil) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon?.socketPath ?? "/tmp/no-such-dir/t.sock"
        return try ChildProcess([Binaries.turnstile] + arguments, environment: environment, stdin: stdin)
    }

    /// Runs it to the end.
    static func finished(_ daemon: Daemon?, _ arguments: [String]) throws -> ChildProcess {
        let process = try turnstile(daemon, arguments)
        _ = process.waitForExit()
        return process
    }

    @Test func theCommandsExitCodeIsPassedOn() throws {
        let daemon = try Daemon()
        #expect(try Self.finished(daemon, ["run", "--", "sh", "-c", "exit 7"]).exitCode == 7)
        #expect(try Self.finished(daemon, ["run", "--", "true"]).exitCode == 0)
        #expect(try Self.finished(daemon, ["run", "--", "sh", "-c", "kill -TERM $$"]).exitCode == 143, "128 + SIGTERM")
        #expect(try Self.finished(daemon, ["run", "--", "no-such-command-anywhere"]).exitCode == 127)
        #expect(try daemon.client().ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 0, "all released")
    }

    @Test func theEnvironmentNamesTheLease() throws {
        let daemon = try Daemon()
        let withModel = try Self.finished(daemon, ["run", "--model", "zai/glm-5", "--", "sh", "-c", "env | grep ^TURNSTILE_ | sort"])
        #expect(withModel.exitCode == 0)
        let lines = Set(withModel.output.split(separator: "\n").map(String.init))
        #expect(lines.contains("TURNSTILE_MODEL=zai/glm-5") && lines.contains("TURNSTILE_PROVIDER=zai")
                && lines.contains("TURNSTILE_ROUTE=primary"))
        #expect(lines.contains { $0.hasPrefix("TURNSTILE_LEASE=") && $0.count == "TURNSTILE_LEASE=".count + 32 })
        #expect(lines.contains { $0.hasPrefix("TURNSTILE_FENCE=") })
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        environment["TURNSTILE_MODEL"] = "stale/value"
        let plain = try ChildProcess([Binaries.turnstile, "run", "--", "sh", "-c", "env | grep ^TURNSTILE_ | sort"],
                                     environment: environment)
        _ = plain.waitForExit()
        #expect(!plain.output.contains("TURNSTILE_MODEL"), "unset when no model was named")
        #expect(!plain.output.contains("TURNSTILE_ROUTE") && plain.output.contains("TURNSTILE_LEASE="))
    }

    @Test func theLeaseIsBoundToTheCommandsProcessGroup() throws {
        let daemon = try Daemon()
        let run = try Self.turnstile(daemon, ["run", "--holder", "bound", "--", "sh", "-c", "echo pid=$$; exec sleep 600"])
        #expect(run.waitForOutput("pid="))
        let pid = run.output.split(separator: "\n").first { $0.hasPrefix("pid=") }.map { Int64($0.dropFirst(4)) ?? 0 }
        let client = try daemon.client()
        var leaseGroup: Int64?
        for _ in 0..<2000 where leaseGroup != pid {
            leaseGroup = try client.ask("status")["leases"]?.arrayValue?.first?.objectValue?["pgid"]?.numberValue?.int64
        }
        #expect(leaseGroup == pid, "COMMAND leads its own group")
        run.signal(SIGTERM)
        _ = run.waitForExit()
        #expect(run.exitCode == 143)
    }

    @Test(arguments: [SIGINT, SIGHUP, SIGTERM])
    func signalsAreForwardedToTheCommandsGroup(signal: Int32) throws {
        let daemon = try Daemon()
        let run = try Self.turnstile(daemon, ["run", "--", "sh", "-c",
                                              "trap 'echo caught-int; exit 5' INT; trap 'echo caught-hup; exit 5' HUP; "
                                              + "trap 'echo caught-term; exit 5' TERM; echo ready; sleep 600 & wait"])
        #expect(run.waitForOutput("ready"))
        run.signal(signal)
        _ = run.waitForExit()
        let name = [SIGINT: "int", SIGHUP: "hup", SIGTERM: "term"][signal]!
        #expect(run.output.contains("caught-\(name)"), "\(run.output)")
        #expect(run.exitCode == 5)
    }

    @Test func aKilledTurnstileTakesItsCommandDownWithIt() throws {
        let daemon = try Daemon()
        let run = try Self.turnstile(daemon, ["run", "--", "sh", "-c", "echo ready; exec sleep 600"])
        #expect(run.waitForOutput("ready"))
        let client = try daemon.client()
        var pid: Int64?
        for _ in 0..<2000 where pid == nil {
            pid = try client.ask("status")["leases"]?.arrayValue?.first?.objectValue?["pgid"]?.numberValue?.int64
        }
        let command = try #require(pid.map { Int32($0) })
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        run.signal(SIGKILL)
        #expect(Self.waitUntilGone(command), "COMMAND got its parent-death signal")
        // The lease ended with the wrapper's connection while COMMAND still ran: its slot is
        // free once the daemon has seen the group gone.
        let freed = try watcher.waitForEvent("released")
        #expect(freed?["cause"]?.stringValue == "drained" || freed?["cause"]?.stringValue == "disconnected")
        #expect(try client.ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 0)
    }

    @Test func theDaemonNotComingBackWithinTheTTLLosesTheLease() throws {
        let daemon = try Daemon()
        let run = try Self.turnstile(daemon, ["run", "--ttl", "1s", "--grace", "1s", "--", "sh", "-c",
                                              "echo ready; exec sleep 600"])
        #expect(run.waitForOutput("ready"))
        daemon.crash()
        _ = run.waitForExit()
        #expect(run.exitCode == 70, "\(run.output)")
        #expect(run.output.contains("did not come back within the lease's ttl"))
    }

    @Test func withoutTTLTheLeaseGetsTheDaemonsDefault() throws {
        let daemon = try Daemon(config: "[limits]\ndefault_ttl_ms = 120000\n")
        let run = try Self.turnstile(daemon, ["run", "--", "sh", "-c", "echo ready; exec sleep 600"])
        #expect(run.waitForOutput("ready"))
        let client = try daemon.client()
        var expiresIn: Int64?
        for _ in 0..<2000 where expiresIn == nil {
            expiresIn = try client.ask("status")["leases"]?.arrayValue?.first?.objectValue?["expires_in_ms"]?.numberValue?.int64
        }
        #expect((expiresIn ?? 0) > 60_000, "the daemon's default_ttl_ms, not a built-in 30 s")
        run.signal(SIGTERM)
        _ = run.waitForExit()
    }

    /// Waits (on a pidfd) for a process that is not our child to end, up to ten seconds.
    static func waitUntilGone(_ pid: Int32) -> Bool {
        let fd = turnstile_pidfd_open(pid)
        guard fd >= 0 else { return isGone(pid) }
        defer { close(fd) }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 10_000) == 1 || isGone(pid)
    }

    @Test func aLostLeaseStopsTheWholeGroupAndExits70() throws {
        let daemon = try Daemon()
        let run = try Self.turnstile(daemon, ["run", "--holder", "victim", "--grace", "2s", "--", "sh", "-c",
                                              "sleep 600 & echo child=$!; echo ready; wait"])
        #expect(run.waitForOutput("ready"))
        let child = run.output.split(separator: "\n").first { $0.hasPrefix("child=") }.flatMap { Int32($0.dropFirst(6)) }
        let client = try daemon.client()
        var fence: Int64?
        for _ in 0..<2000 where fence == nil {
            fence = try client.ask("status")["leases"]?.arrayValue?.first?.objectValue?["fence"]?.numberValue?.int64
        }
        #expect(try client.ask("revoke", [("fence", .integer(fence!))]).ok)
        _ = run.waitForExit()
        #expect(run.exitCode == 70)
        #expect(run.output.contains("lease lost (revoked)"))
        #expect(Self.isGone(child!), "the background grandchild was stopped too")
    }

    /// Whether a process has ended: no longer there, or a zombie waiting for a reaper.
    static func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    @Test func aGroupMemberIgnoringTermIsKilledAfterTheGrace() throws {
        let daemon = try Daemon()
        let run = try Self.turnstile(daemon, ["run", "--grace", "500ms", "--", "sh", "-c",
                                              "(trap '' TERM; exec sleep 600) & echo stubborn=$!; echo ready; wait"])
        #expect(run.waitForOutput("ready"))
        let stubborn = run.output.split(separator: "\n").first { $0.hasPrefix("stubborn=") }.flatMap { Int32($0.dropFirst(9)) }
        let client = try daemon.client()
        var fence: Int64?
        for _ in 0..<2000 where fence == nil {
            fence = try client.ask("status")["leases"]?.arrayValue?.first?.objectValue?["fence"]?.numberValue?.int64
        }
        _ = try client.ask("revoke", [("fence", .integer(fence!))])
        _ = run.waitForExit()
        #expect(run.exitCode == 70)
        #expect(Self.isGone(stubborn!), "SIGKILL after the grace reached the member that ignored SIGTERM")
    }

    @Test func aDaemonRestartDoesNotLoseTheLease() throws {
        let daemon = try Daemon()
        let fifo = daemon.directory + "/go"
        mkfifo(fifo, 0o600)
        let run = try Self.turnstile(daemon, ["run", "--ttl", "5s", "--holder", "survivor", "--", "sh", "-c",
                                              "echo ready; read line < \(fifo); echo finished"])
        #expect(run.waitForOutput("ready"))
        #expect(daemon.stop() == 0)
        try daemon.start()
        #expect(run.waitForOutput("reconnected; the lease is kept"))
        let client = try daemon.client()
        let status = try client.ask("status")
        let holder = status["leases"]?.arrayValue?.first?.objectValue
        #expect(holder?["holder"]?.stringValue == "survivor")
        #expect(holder?["bound"]?.boolValue == true, "attached again")
        let writer = open(fifo, O_WRONLY)
        _ = write(writer, "go\n", 3)
        close(writer)
        _ = run.waitForExit()
        #expect(run.exitCode == 0)
        #expect(run.output.contains("finished"))
    }

    @Test func noPermitWithinTheWaitExits75WithoutStarting() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        _ = try client.ask("acquire")
        let marker = daemon.directory + "/started"
        let run = try Self.finished(daemon, ["run", "--wait", "300ms", "--", "touch", marker])
        #expect(run.exitCode == 75)
        #expect(!FileManager.default.fileExists(atPath: marker), "COMMAND never started")
        #expect(run.output.contains("no permit within 300ms: global"))
    }

    @Test func aLongWaitSaysWhatItWaitsFor() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        let held = try client.ask("acquire")
        let run = try Self.turnstile(daemon, ["run", "--", "true"])
        #expect(run.waitForOutput("turnstile: waiting: global (position 1)"))
        _ = try client.ask("release", [("lease", held["lease"]!)])
        _ = run.waitForExit()
        #expect(run.exitCode == 0)
    }

    @Test func anUnreachableDaemonExits69() throws {
        let run = try Self.finished(nil, ["run", "--", "true"])
        #expect(run.exitCode == 69)
        #expect(run.output.contains("no daemon at /tmp/no-such-dir/t.sock"))
        #expect(run.output.contains("start it with `turnstiled`"))
    }

    @Test(arguments: [["run"], ["run", "--ttl", "soon", "--", "true"], ["run", "--bogus", "--", "true"], ["revoke"]])
    func usageErrorsExit64(arguments: [String]) throws {
        let daemon = try Daemon()
        #expect(try Self.finished(daemon, arguments).exitCode == 64)
    }

    @Test func theCommandGetsTheTerminalsForeground() throws {
        let daemon = try Daemon()
        let script = """
            import os, pty, sys
            os.environ["TURNSTILE_SOCKET"] = sys.argv[1]
            pty.spawn([sys.argv[2], "run", "--", "sh", "-c",
                       "test $(ps -o tpgid= -p $$) -eq $(ps -o pgid= -p $$) && echo FOREGROUND || echo BACKGROUND"])
            """
        let run = try ChildProcess(["/usr/bin/python3", "-c", script, daemon.socketPath, Binaries.turnstile])
        _ = run.waitForExit()
        #expect(run.output.contains("FOREGROUND"), "\(run.output)")
    }
}
