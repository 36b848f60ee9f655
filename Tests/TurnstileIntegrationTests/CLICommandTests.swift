import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Every `turnstile` subcommand besides `run`, against a real daemon: stdout, stderr, exit code.
@Suite("turnstile commands", .timeLimit(.minutes(1)))
struct CLICommandTests {
    static func cli(_ daemon: Daemon, _ arguments: [String]) throws -> ChildProcess {
        try CLIRunTests.finished(daemon, arguments)
    }

    static func json(_ process: ChildProcess) throws -> JSONObject {
        let line = process.output.split(separator: "\n").first { $0.hasPrefix("{") } ?? ""
        return try #require(try JSONParser.parse(String(line)).objectValue)
    }

    @Test func acquireHeartbeatReleaseAndRevoke() throws {
        let daemon = try Daemon()
        let acquired = try Self.cli(daemon, ["acquire", "--json", "--project", "alpha", "--mode", "issue", "--holder", "sh", "--ttl", "10s"])
        #expect(acquired.exitCode == 0)
        let answer = try Self.json(acquired)
        let token = try #require(answer["lease"]?.stringValue)
        #expect(answer["ttl_ms"]?.numberValue?.int64 == 10_000)
        let status = try daemon.client().ask("status")
        #expect(status["leases"]?.arrayValue?.first?.objectValue?["bound"]?.boolValue == false, "acquire takes a detached lease")
        #expect(try Self.cli(daemon, ["heartbeat", token]).exitCode == 0)
        let beat = try Self.cli(daemon, ["heartbeat", "--json", token, String(repeating: "0", count: 32)])
        #expect(try Self.json(beat)["results"]?.arrayValue?.count == 2)
        #expect(try Self.cli(daemon, ["release", token]).exitCode == 0)
        let again = try Self.cli(daemon, ["release", token])
        #expect(again.exitCode == 1)
        #expect(again.output.contains("turnstile: not_found"))
        let second = try Self.json(try Self.cli(daemon, ["acquire", "--json"]))
        #expect(try Self.cli(daemon, ["revoke", "--fence", "\(second["fence"]!.numberValue!.text)"]).exitCode == 0)
        #expect(try Self.cli(daemon, ["revoke", "--fence", "9999"]).exitCode == 1)
    }

    @Test func acquireWaitsForAPermitByDefault() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        let held = try client.ask("acquire")
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        let waiting = try ChildProcess([Binaries.turnstile, "acquire", "--json", "--holder", "patient"], environment: environment)
        var queued: Int64? = 0
        for _ in 0..<10_000 where queued != 1 {
            queued = try client.ask("status")["global"]?.objectValue?["waiting"]?.numberValue?.int64
        }
        #expect(queued == 1, "it waits")
        _ = try client.ask("release", [("lease", held["lease"]!)])
        _ = waiting.waitForExit()
        #expect(waiting.exitCode == 0, "\(waiting.output)")
        #expect(waiting.output.contains(#""ok":true"#))
    }

    @Test func aRequestTheDaemonFindsMalformedExits64() throws {
        let daemon = try Daemon()
        let refused = try Self.cli(daemon, ["acquire", "--mode", "sometimes", "--wait", "0"])
        #expect(refused.exitCode == 64, "\(refused.output)")
        #expect(refused.output.contains("bad_request"))
    }

    @Test func acquireWithPidAndARefusal() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let sleeper = try ChildProcess(["sleep", "600"])
        let bound = try Self.json(try Self.cli(daemon, ["acquire", "--json", "--pid", "\(sleeper.pid)"]))
        #expect(bound["ok"]?.boolValue == true)
        let refused = try Self.cli(daemon, ["acquire", "--json", "--wait", "0"])
        #expect(refused.exitCode == 75)
        #expect(try Self.json(refused)["reason"]?.stringValue == "global")
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        sleeper.signal(SIGKILL)
        #expect(try watcher.waitForEvent("released")?["cause"]?.stringValue == "process_exited")
    }

    @Test func statusPrintsATableOrJSON() throws {
        let daemon = try Daemon()
        _ = try Self.cli(daemon, ["acquire", "--project", "alpha", "--holder", "tabled"])
        let table = try Self.cli(daemon, ["status"])
        #expect(table.exitCode == 0)
        #expect(table.output.contains("PERMITS   1/8 in use · 0 waiting"))
        #expect(table.output.contains("tabled"))
        let json = try Self.json(try Self.cli(daemon, ["status", "--json"]))
        #expect(json["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 1)
    }

    /// `turnstile status` on a daemon brought into a fixed state, against a golden table. Only
    /// what moves with the clock is masked: durations become `~`, the daemon's pid `PID`, and
    /// runs of spaces two (column widths follow the durations; the unit golden checks them).
    @Test func statusTableOfAFixedDaemonStateMatchesItsGolden() throws {
        let daemon = try Daemon(config: """
            [limits]
            global = 4
            [[projects]]
            name = "alpha"
            max = 2
            max_mention = 1
            [[providers]]
            name = "anthropic"
            models = ["claude-opus-4"]
            [[models]]
            name = "claude-opus-4"
            concurrency_limit = 1
            """)
        let holder = try daemon.client()
        #expect(try holder.ask("acquire", [("project", .text("alpha")), ("mode", .text("issue")),
                                           ("model", .text("anthropic/claude-opus-4")), ("workspace", .text("/src/app")),
                                           ("holder", .text("agent-1"))]).ok)
        #expect(try holder.ask("acquire", [("project", .text("alpha")), ("mode", .text("issue"))]).ok)
        let parked = try holder.ask("acquire", [("project", .text("beta")), ("detach", .bool(true))])
        #expect(try holder.ask("park", [("lease", parked["lease"]!)]).ok)
        let waiter = try daemon.client()
        _ = try waiter.send("acquire", [("project", .text("alpha")), ("mode", .text("time")), ("holder", .text("cron-3")),
                                        ("wait_ms", .integer(600_000))])
        #expect(try holder.ask("pause", [("project", .text("beta"))]).ok)
        #expect(try holder.ask("report", [("project", .text("beta")), ("agent", .text("project-meta")),
                                          ("success", .bool(false))]).ok)
        #expect(try holder.ask("throttle", [("provider", .text("openai")), ("retry_after", .text("600"))]).ok)
        let table = try Self.cli(daemon, ["status"])
        #expect(table.exitCode == 0)
        let masked = table.output
            .replacingOccurrences(of: #"pid \d+"#, with: "pid PID", options: .regularExpression)
            .replacingOccurrences(of: #"\b\d+(h\d+m|m\d+s|ms|s|m|h)\b"#, with: "~", options: .regularExpression)
            .replacingOccurrences(of: #"  +"#, with: "  ", options: .regularExpression)
        let golden = """
            turnstiled 0.1.0 (pid PID, up ~) · fairness round_robin
            PERMITS  2/4 in use · 1 waiting
            MODES  time 0/3 · issue 2/2 · mention 0 · any 0
            PROJECTS
              PROJECT  IN USE  MENTION  PAUSED  FAILURES
              alpha  2/2  0/1  -  0
              beta  0/-  0/-  paused  1
            MODELS
              MODEL  IN USE  TIER  TOOLS  SUBSCRIPTION
              anthropic/claude-opus-4  1/1  premium  yes  ok
            LEASES
              FENCE  PROJECT  MODE  MODEL  HOLDER  PID  AGE  HEARTBEAT  EXPIRES  STATE
              1  alpha  issue  anthropic/claude-opus-4  agent-1  -  ~  ~ ago  in ~  bound
              2  alpha  issue  -  -  -  ~  ~ ago  in ~  bound
              3  beta  any  -  -  -  ~  ~ ago  in ~  detached,parked
            WAITING  1 · by reason: project 1 · by mode: time 1 · by project: alpha 1
              POS  PROJECT  MODE  MODEL  HOLDER  PRIORITY  REASON  WAITED
              1  alpha  time  -  cron-3  0  project  ~
            THROTTLES
              openai for tenant local: ~ left
            PAUSED  beta

            """
        #expect(masked == golden, "\n\(masked)")
    }

    @Test func pauseResumeReportAndReload() throws {
        let daemon = try Daemon(config: "[circuit_breaker]\nthreshold = 1\n")
        #expect(try Self.cli(daemon, ["pause", "alpha"]).exitCode == 0)
        #expect(FileManager.default.fileExists(atPath: daemon.pauseDirectory + "/alpha"))
        #expect(try Self.cli(daemon, ["resume", "alpha"]).exitCode == 0)
        let report = try Self.json(try Self.cli(daemon, ["report", "--json", "beta", "project-meta", "--no-success"]))
        #expect(report["tripped"]?.boolValue == true)
        #expect(try Self.cli(daemon, ["pause", "__global__"]).exitCode == 64)
        try daemon.writeConfig("[limits]\nglobal = 3\n")
        #expect(try Self.cli(daemon, ["reload"]).exitCode == 0)
        try daemon.writeConfig("[limits]\nglobal = \"three\"\n")
        let bad = try Self.cli(daemon, ["reload"])
        #expect(bad.exitCode == 1)
        #expect(bad.output.contains("bad_config") && bad.output.contains("limits.global"))
    }

    @Test func throttleRecordPerformanceUsageMetrics() throws {
        let daemon = try Daemon()
        let throttled = try Self.json(try Self.cli(daemon, ["throttle", "--json", "openai", "--retry-after", "30s"]))
        #expect(throttled["retry_after_ms"]?.numberValue?.int64 == 30_000)
        #expect(try Self.cli(daemon, ["throttle", "openai", "--retry-after-header", "5"]).exitCode == 0)
        #expect(try Self.cli(daemon, ["throttle", "openai"]).exitCode == 64, "needs one of the two")
        let recorded = try Self.cli(daemon, ["record", "--model", "zai/glm-5", "--latency", "850ms", "--success",
                                             "--session", "s1", "--input-tokens", "20", "--output-tokens", "10", "--cost-usd", "0.5"])
        #expect(recorded.exitCode == 0)
        let performance = try Self.json(try Self.cli(daemon, ["performance", "--json", "--model", "zai/glm-5"]))
        #expect(performance["models"]?.arrayValue?.first?.objectValue?["avg_latency_ms"]?.numberValue?.double == 850)
        let usage = try Self.json(try Self.cli(daemon, ["usage", "--json", "s1"]))
        #expect(usage["usage"]?.objectValue?["totals"]?.objectValue?["total_tokens"]?.numberValue?.int64 == 30)
        let metrics = try Self.cli(daemon, ["metrics"])
        #expect(metrics.output.contains("turnstile_throttles_active 1"))
    }

    @Test func watchPrintsOneLinePerEvent() throws {
        let daemon = try Daemon()
        let watch = try CLIRunTests.turnstile(daemon, ["watch"])
        let client = try daemon.client()
        var granted = false
        // The watch connection may start after the first acquires: repeat until it sees one.
        for _ in 0..<200 where !granted {
            let lease = try client.ask("acquire", [("holder", .text("watched"))])
            _ = try client.ask("release", [("lease", lease["lease"]!)])
            granted = watch.waitForOutput("granted fence=", milliseconds: 50)
        }
        #expect(watch.waitForOutput("holder=watched"))
        #expect(watch.waitForOutput("released fence="))
        watch.signal(SIGTERM)
        let json = try CLIRunTests.turnstile(daemon, ["watch", "--json"])
        var seen = false
        for _ in 0..<200 where !seen {
            _ = try client.ask("pause", [("project", .text("p"))])
            _ = try client.ask("resume", [("project", .text("p"))])
            seen = json.waitForOutput(#"{"event":"paused","project":"p"}"#, milliseconds: 50)
        }
        #expect(seen)
    }
}
