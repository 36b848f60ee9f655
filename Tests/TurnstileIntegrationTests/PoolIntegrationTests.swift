import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// `turnstile run --pool build=3 -- …` is the `sem --id build -j 3` of Turnstile (README
/// "Pools"): real jobs under `xargs -P 16`, checked from their own timestamps.
@Suite("Pools with real jobs", .timeLimit(.minutes(2)))
struct PoolIntegrationTests {
    /// Largest number of [begin, end] intervals open at one instant.
    static func maxOverlap(_ lines: [Substring]) -> Int {
        var events: [(Int64, Int)] = []
        for line in lines {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let t = Int64(parts[1]) else { continue }
            events.append((t, parts[0] == "B" ? 1 : -1))
        }
        // An end and a begin at the same nanosecond: the end first (the slot was free).
        events.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var open = 0, most = 0
        for event in events {
            open += event.1
            most = max(most, open)
        }
        return most
    }

    @Test func sixteenJobsUnderXargsNeverExceedAnAdHocPoolOfThree() throws {
        let daemon = try Daemon()
        let log = daemon.directory + "/jobs.log"
        let stamp = #"python3 -c 'import time; print(time.monotonic_ns())'"#
        let job = "echo \"B $(\(stamp))\" >> \(log); sleep 0.3; echo \"E $(\(stamp))\" >> \(log)"
        let script = "seq 16 | xargs -P 16 -I{} \(Binaries.turnstile) --socket \(daemon.socketPath) run --pool build=3 "
            + "--holder job{} -- sh -c '\(job.replacingOccurrences(of: "'", with: "'\\''"))'"
        let xargs = try ChildProcess(["sh", "-c", script])
        #expect(xargs.waitForExit(milliseconds: 60_000) != nil)
        #expect(xargs.exitCode == 0, "\(xargs.output)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("B ") }.count == 16 && lines.filter { $0.hasPrefix("E ") }.count == 16, "every job ran once")
        let most = Self.maxOverlap(lines)
        #expect(most <= 3, "never more than the pool's 3 at once (saw \(most))")
        #expect(most >= 2, "the pool was shared, not serialised (saw \(most))")
        let status = try daemon.client().ask("status")
        #expect(status["pools"]?.objectValue?.members.isEmpty == true, "the ad-hoc pool is forgotten when empty")
    }

    @Test func aConfiguredPoolFromTheCLIWithStatusWatchAndMetrics() throws {
        let daemon = try Daemon(config: "[[pools]]\nname = \"gpu\"\nlimit = 1")
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let holder = try CLIRunTests.turnstile(daemon, ["run", "--pool", "gpu", "--holder", "trainer", "--", "sh", "-c", "echo ready; sleep 600"])
        #expect(holder.waitForOutput("ready"))
        #expect(try watcher.waitForEvent("granted")?["pools"]?.arrayValue?.compactMap(\.stringValue) == ["gpu"])
        let refused = try CLIRunTests.finished(daemon, ["run", "--pool", "gpu", "--wait", "0", "--", "true"])
        #expect(refused.exitCode == 75 && refused.output.contains("pool"), "\(refused.output)")
        let table = try CLIRunTests.finished(daemon, ["status"])
        #expect(table.output.contains("POOLS     gpu 1/1"), "\(table.output)")
        let metrics = try daemon.client().ask("metrics").string("text") ?? ""
        #expect(metrics.contains(#"turnstile_pool_in_use{pool="gpu"} 1"#) && metrics.contains(#"turnstile_pool_limit{pool="gpu"} 1"#))
        let noLimit = try CLIRunTests.finished(daemon, ["run", "--pool", "nowhere", "--", "true"])
        #expect(noLimit.exitCode == 64 && noLimit.output.contains("has no limit"), "\(noLimit.output)")
        holder.signal(SIGTERM)
        _ = holder.waitForExit()
    }

    /// The journal carries each lease's limit in force (protocol/PROTOCOL.md §13.4): after a crash
    /// an ad-hoc pool whose definer had left comes back at the limit it had, and a conflicting
    /// `pool_limits` from the wire is still a `bad_request`.
    @Test func anAdHocPoolSurvivesACrashAfterItsDefinerLeft() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let limits: JSONValue = .object(JSONObject([("build", .integer(2))]))
        let definer = try client.ask("acquire", [("pools", .text("build")), ("pool_limits", limits), ("detach", .bool(true))])
        let follower = try client.ask("acquire", [("pools", .text("build")), ("detach", .bool(true))])
        #expect(definer.ok && follower.ok)
        #expect(try client.ask("release", [("lease", definer["lease"]!)]).ok)
        daemon.crash()
        try daemon.start()
        let again = try daemon.client()
        let pool = try again.ask("status")["pools"]?.objectValue?["build"]?.objectValue
        #expect(pool?["limit"]?.numberValue?.int64 == 2 && pool?["in_use"]?.numberValue?.int64 == 1, "\(String(describing: pool))")
        let conflict = try again.ask("acquire", [("pools", .text("build")), ("pool_limits", .object(JSONObject([("build", .integer(5))])))])
        #expect(conflict.error == "bad_request" && conflict.string("field") == "pool_limits")
        #expect(try again.ask("acquire", [("pools", .text("build")), ("detach", .bool(true))]).ok, "a second unit of 2")
        #expect(try again.ask("acquire", [("pools", .text("build"))]).string("reason") == "pool")
    }
}
