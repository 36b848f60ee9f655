import CLibUV
import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// A permit is free only when its work is gone (protocol/PROTOCOL.md §10.10, README "turnstile
/// run"): real wrappers, real process groups, real SIGKILLs.
@Suite("Process-group leases with real processes", .timeLimit(.minutes(3)))
struct ProcessGroupLeaseTests {
    /// Lines naming the live (not zombie) processes of group `pgid`, as the next holder's
    /// command sees them: it prints OVERLAP if any runs.
    static let overlapCheck = #"for f in /proc/[0-9]*/stat; do read -r line < "$f" 2>/dev/null || continue; "#
        + #"rest=${line##*) }; set -- $rest; [ "$3" = "$G" ] && [ "$1" != Z ] && echo "OVERLAP $f"; done; echo checked"#

    /// The wrapper is SIGKILLed while COMMAND's group runs on: a member that ignores SIGTERM and
    /// a grandchild. Under `global = 1`, the next `run` starts only once every one of them is
    /// gone; twenty rounds.
    @Test func aKilledWrapperGivesTheSlotToNoOneUntilItsWholeGroupIsGone() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\nkill_grace_ms = 300")
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        for round in 1...20 {
            let first = try CLIRunTests.turnstile(daemon, ["run", "--holder", "first", "--", "sh", "-c",
                "(trap '' TERM; exec sleep 600) & sh -c 'sleep 600 & wait' & echo group=$$; echo ready; wait"])
            #expect(first.waitForOutput("ready"), "round \(round): \(first.output)")
            let group = first.output.split(separator: "\n").first { $0.hasPrefix("group=") }.map { String($0.dropFirst(6)) } ?? "0"
            #expect(try watcher.waitForEvent("granted")?["holder"]?.stringValue == "first")
            var environment = ProcessInfo.processInfo.environment
            environment["TURNSTILE_SOCKET"] = daemon.socketPath
            environment["G"] = group
            let second = try ChildProcess([Binaries.turnstile, "run", "--holder", "second", "--", "sh", "-c", Self.overlapCheck],
                                          environment: environment)
            first.signal(SIGKILL)
            _ = first.waitForExit()
            let draining = try watcher.waitForEvent("draining")
            #expect(draining?["cause"]?.stringValue == "disconnected", "round \(round): \(String(describing: draining))")
            _ = second.waitForExit(milliseconds: 30_000)
            #expect(second.exitCode == 0 && second.output.contains("checked"), "round \(round): \(second.output)")
            #expect(!second.output.contains("OVERLAP"), "round \(round): the next holder ran beside the old group: \(second.output)")
            let freed = try watcher.waitForEvent("released")
            #expect(freed?["cause"]?.stringValue == "drained" && freed?["ended_by"]?.stringValue == "disconnected")
            _ = try watcher.waitForEvent("released")  // the second's own finish
        }
        #expect(daemon.logShows("outlived kill_grace_ms"), "the member that ignored SIGTERM got SIGKILL")
    }

    /// COMMAND exits and leaves a background child: the release says how COMMAND finished,
    /// the lease drains until the daemon has stopped the child.
    @Test func aReleaseWithBackgroundWorkLeftDrainsIt() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1")
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let run = try CLIRunTests.finished(daemon, ["run", "--", "sh", "-c", "sleep 600 & echo bg=$!; exit 4"])
        #expect(run.exitCode == 4)
        let background = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("bg=") }.flatMap { Int32($0.dropFirst(3)) })
        let draining = try watcher.waitForEvent("draining")
        #expect(draining?["cause"]?.stringValue == "released" && draining?["exit_code"]?.numberValue?.int64 == 4)
        let freed = try watcher.waitForEvent("released")
        #expect(freed?["cause"]?.stringValue == "drained" && freed?["ended_by"]?.stringValue == "released")
        #expect(CLIRunTests.isGone(background), "the daemon stopped what the group left running")
        #expect(try daemon.client().ask("acquire").ok)
    }

    /// Finishes are not reclaims: exit codes and signals reach watch and metrics.
    @Test func cleanFinishesAreCountedAsFinishesWithTheirExitStatus() throws {
        let daemon = try Daemon()
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        for _ in 0..<20 { #expect(try CLIRunTests.finished(daemon, ["run", "--", "true"]).exitCode == 0) }
        #expect(try CLIRunTests.finished(daemon, ["run", "--", "sh", "-c", "exit 3"]).exitCode == 3)
        #expect(try CLIRunTests.finished(daemon, ["run", "--", "sh", "-c", "kill -KILL $$"]).exitCode == 137)
        var ends: [JSONObject] = []
        while ends.count < 22, let event = try watcher.waitForEvent("released") { ends.append(event) }
        #expect(ends.count == 22)
        #expect(ends.allSatisfy { $0["cause"]?.stringValue == "released" }, "\(ends.map { $0["cause"]?.stringValue ?? "-" })")
        #expect(ends[0]["exit_code"]?.numberValue?.int64 == 0)
        #expect(ends[20]["exit_code"]?.numberValue?.int64 == 3)
        #expect(ends[21]["signal"]?.numberValue?.int64 == 9 && ends[21]["exit_code"] == nil)
        let metrics = try #require(try daemon.client().ask("status")["metrics"]?.objectValue)
        #expect(metrics["released_total"]?.numberValue?.int64 == 22)
        #expect(metrics["reclaimed_total"]?.numberValue?.int64 == 0)
        #expect(metrics["finished_success_total"]?.numberValue?.int64 == 20)
        #expect(metrics["finished_failure_total"]?.numberValue?.int64 == 2)
        let text = try daemon.client().ask("metrics").string("text") ?? ""
        #expect(text.contains(#"turnstile_lease_ends_total{cause="released"} 22"#), "\(text)")
        #expect(daemon.logShows("cause=released exit_code=3"), "the log tells a finish and its exit code")
        #expect(daemon.logShows("cause=released") && daemon.logShows("signal=9"))
    }

    /// `turnstile run` attaches COMMAND's group to the lease it already holds on the same
    /// connection, without awaiting the answer: that attach must not count the lease twice
    /// against `max_leases_per_connection`, or under a limit of 1 COMMAND runs unbound and a
    /// killed wrapper frees the slot while the group still runs.
    @Test func reattachingALeaseThisConnectionHoldsIsNotOverTheLeaseLimit() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\nkill_grace_ms = 60000\n[server]\nmax_leases_per_connection = 1")
        let work = try ChildProcess(["python3", "-c", "import os,signal,time; os.setpgid(0,0); "
                                     + "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"])
        defer { work.signal(SIGKILL); _ = work.waitForExit() }
        #expect(work.waitForOutput("ready"))
        let client = try daemon.client()
        let lease = try client.ask("acquire")
        #expect(lease.ok, "\(lease)")
        let attached = try client.ask("attach", [("lease", .text(lease.string("lease") ?? "")), ("pgid", .integer(Int64(work.pid)))])
        #expect(attached.ok, "\(attached)")
        client.close()
        let other = try daemon.client()
        #expect(try other.ask("acquire").string("reason") == "global", "the group still runs: its slot is still taken")
    }

    /// A daemon restarted while a lease drains keeps the slot taken and watches the group again.
    @Test func drainingSurvivesADaemonCrash() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\nkill_grace_ms = 600000")
        let run = try CLIRunTests.turnstile(daemon, ["run", "--", "sh", "-c",
                                                     "(trap '' TERM; exec sleep 600) & echo stubborn=$!; echo ready; wait"])
        #expect(run.waitForOutput("ready"))
        let stubborn = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("stubborn=") }
            .flatMap { Int32($0.dropFirst(9)) })
        run.signal(SIGKILL)
        _ = run.waitForExit()
        #expect(daemon.logShows("draining"), "\(daemon.fullLog)")
        // An answer leaves only after its loop turn's journal is written: once a status shows
        // the lease draining, the change is on disk (the log line comes before that write).
        let before = try daemon.client()
        let seen = try before.ask("status")["leases"]?.arrayValue?.first?.objectValue
        #expect(seen?["draining"]?.stringValue == "disconnected", "\(String(describing: seen))")
        before.close()
        daemon.crash()
        try daemon.start()
        let client = try daemon.client()
        let lease = try client.ask("status")["leases"]?.arrayValue?.first?.objectValue
        #expect(lease?["draining"]?.stringValue == "disconnected", "\(String(describing: lease))")
        #expect(try client.ask("acquire").string("reason") == "global", "the slot is still taken")
        _ = try client.ask("watch")
        kill(stubborn, SIGKILL)
        let freed = try client.waitForEvent("released")
        #expect(freed?["cause"]?.stringValue == "drained")
        #expect(try client.ask("acquire").ok)
    }
}

/// Where the daemon may not signal a group (another user's, and it is not root) it waits for
/// the group to end on its own (protocol/PROTOCOL.md §10.10).
@Suite("Draining another user's process group", .timeLimit(.minutes(1)))
struct ForeignGroupDrainTests {
    @Test func aDaemonThatMayNotSignalTheGroupWaitsForIt() throws {
        guard getuid() == 0 else { return }  // needs to start the daemon as another user
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "[limits]\nglobal = 1\nkill_grace_ms = 100\n".write(toFile: directory + "/t.toml", atomically: true, encoding: .utf8)
        chmod(directory + "/t.toml", 0o644)
        chown(directory, 65534, 65534)
        let daemon = try ChildProcess(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", Binaries.turnstiled,
                                       "--config", directory + "/t.toml", "--socket", directory + "/t.sock",
                                       "--state-dir", directory + "/state"])
        defer { daemon.signal(SIGKILL); _ = daemon.waitForExit() }
        #expect(daemon.waitForOutput("turnstiled ready"), "\(daemon.output)")
        let work = try ChildProcess(["python3", "-c",
                                     "import os,time; os.setpgid(0,0); print('ready', flush=True); time.sleep(600)"])
        defer { work.signal(SIGKILL); _ = work.waitForExit() }
        #expect(work.waitForOutput("ready"))
        let client = try TurnstileClient(socketPath: directory + "/t.sock")
        _ = try client.ask("watch")
        let lease = try client.ask("acquire", [("pgid", .integer(Int64(work.pid)))])
        #expect(lease.ok, "\(lease)")
        let released = try client.ask("release", [("lease", .text(lease.string("lease") ?? ""))])
        #expect(released["draining"]?.boolValue == true)
        #expect(daemon.waitForOutput("may not signal process group \(work.pid)"), "\(daemon.output)")
        #expect(work.waitForExit(milliseconds: 500) == nil, "the daemon sent it nothing it could act on")
        #expect(try client.ask("acquire").string("reason") == "global", "the slot waits for the group")
        work.signal(SIGKILL)
        let freed = try client.waitForEvent("released")
        #expect(freed?["cause"]?.stringValue == "drained")
        #expect(try client.ask("acquire").ok)
    }
}
