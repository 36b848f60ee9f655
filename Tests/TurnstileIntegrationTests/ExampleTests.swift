import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// `examples/`: the Python client and fleet demo, the bash fleet script, the commented config
/// and the systemd unit, each run (or read) against a real daemon.
@Suite("examples", .timeLimit(.minutes(1)))
struct ExampleTests {
    static let examples = Binaries.packageRoot + "/examples"
    /// The system interpreter, not a pyenv shim (the examples need nothing beyond the stdlib).
    static let python = "/usr/bin/python3"

    /// The environment of an example: the daemon's socket, and nothing stale from the test run.
    static func environment(_ daemon: Daemon, _ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        for key in ["TURNSTILE_LEASE", "TURNSTILE_FENCE", "TURNSTILE_MODEL", "TURNSTILE_PROVIDER", "TURNSTILE_ROUTE"] {
            environment[key] = nil
        }
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        return environment.merging(extra) { $1 }
    }

    /// Runs a Python snippet with `examples/python` on `sys.path`, unbuffered.
    static func python(_ daemon: Daemon, _ script: String) throws -> ChildProcess {
        let prelude = "import sys\nsys.path.insert(0, \(Self.quoted(examples + "/python")))\n"
        return try ChildProcess([python, "-u", "-c", prelude + script], environment: environment(daemon))
    }

    static func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "\\'") + "'" }

    /// Output lines starting with `prefix`.
    static func lines(_ output: String, _ prefix: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
    }

    /// `key=value` fields of an output line.
    static func fields(_ line: String) -> [String: String] {
        var result: [String: String] = [:]
        for word in line.split(separator: " ") {
            guard let equals = word.firstIndex(of: "=") else { continue }
            result[String(word[..<equals])] = String(word[word.index(after: equals)...])
        }
        return result
    }

    static func inUse(_ daemon: Daemon) throws -> Int64? {
        try daemon.client().ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64
    }

    // MARK: - examples/python/turnstile_client (the package, imported from the source tree)

    @Test func thePythonClientHoldsHeartbeatsAndReleasesAPermit() throws {
        let daemon = try Daemon()
        let run = try Self.python(daemon, #"""
            from turnstile_client import TurnstileClient

            def lease_of(status, holder):
                return next((lease for lease in status["leases"] if lease["holder"] == holder), None)

            with TurnstileClient() as client, TurnstileClient() as observer:
                print("hello", client.hello()["server"])
                with client.permit(project="alpha", mode="issue", model="zai/glm-5", ttl_ms=600, holder="py") as permit:
                    print(f"granted fence={permit.fence} model={permit.model} route={permit.route} "
                          f"provider={permit.provider} token={len(permit.lease)}")
                    seen = lease_of(observer.status(), "py")
                    print("listed", seen is not None and seen["fence"] == permit.fence and seen["bound"]
                          and seen["project"] == "alpha" and seen["mode"] == "issue")
                    # Hold it for three ttls: only the heartbeat thread keeps it alive. Losing it
                    # (an `expired` or `revoked` event) would end the wait early.
                    lost = permit.wait_lost(timeout=1.9)
                    seen = lease_of(observer.status(), "py")
                    print("alive-after-three-ttls", not lost and seen is not None and seen["age_ms"] >= 1800)
                print("released", lease_of(observer.status(), "py") is None)
                try:
                    with client.permit(holder="crashing"):
                        raise RuntimeError("the agent crashed")
                except RuntimeError:
                    print("released-on-exception", observer.status()["global"]["in_use"] == 0)
            """#)
        _ = run.waitForExit(milliseconds: 30_000)
        #expect(run.exitCode == 0, "\(run.output)")
        let granted = try #require(Self.lines(run.output, "granted ").first, "\(run.output)")
        let fields = Self.fields(granted)
        #expect(fields["model"] == "zai/glm-5" && fields["route"] == "primary" && fields["provider"] == "zai")
        #expect(fields["token"] == "32" && Int(fields["fence"] ?? "") != nil)
        for line in ["hello turnstiled", "listed True", "alive-after-three-ttls True", "released True",
                     "released-on-exception True"] {
            #expect(run.output.contains(line + "\n"), "\(line): \(run.output)")
        }
        #expect(try Self.inUse(daemon) == 0, "nothing held after the script")
    }

    @Test func thePythonClientRaisesOnRefusalWithTheReason() throws {
        let daemon = try Daemon(config: "[[projects]]\nname = \"alpha\"\nmax = 1\n")
        let run = try Self.python(daemon, #"""
            from turnstile_client import ConnectionLost, PermitUnavailable, TurnstileClient, TurnstileError

            with TurnstileClient() as client:
                with client.permit(project="alpha", holder="first"):
                    try:
                        with client.permit(project="alpha", holder="second"):
                            print("second-granted")
                    except PermitUnavailable as refusal:
                        print(f"refused code={refusal.code} reason={refusal.reason} limit={refusal.limit} "
                              f"in_use={refusal.in_use} timed_out={refusal.timed_out}")
                    try:
                        with client.permit(project="alpha", wait_ms=200):
                            print("waiter-granted")
                    except PermitUnavailable as refusal:
                        print(f"timed-out code={refusal.code} reason={refusal.reason} timed_out={refusal.timed_out}")
                    try:
                        client.request("acquire", mode="sometimes")
                    except PermitUnavailable:
                        print("wrong-class")
                    except TurnstileError as error:
                        print(f"bad-request code={error.code} field={error.answer.get('field')}")
            try:
                TurnstileClient("/nonexistent-dir/t.sock")
            except ConnectionLost as error:
                print(f"unreachable code={error.code}")
            """#)
        _ = run.waitForExit(milliseconds: 30_000)
        #expect(run.exitCode == 0, "\(run.output)")
        #expect(!run.output.contains("second-granted") && !run.output.contains("waiter-granted"), "\(run.output)")
        #expect(run.output.contains("refused code=unavailable reason=project limit=1 in_use=1 timed_out=False\n"),
                "\(run.output)")
        #expect(run.output.contains("timed-out code=timeout reason=project timed_out=True\n"), "\(run.output)")
        #expect(run.output.contains("bad-request code=bad_request field=mode\n"), "\(run.output)")
        #expect(run.output.contains("unreachable code=connection_lost\n"), "\(run.output)")
        #expect(try Self.inUse(daemon) == 0)
    }

    @Test func thePythonClientReportsALostLease() throws {
        let daemon = try Daemon()
        let run = try Self.python(daemon, #"""
            from turnstile_client import LeaseLost, TurnstileClient

            with TurnstileClient() as client:
                with client.permit(holder="victim", ttl_ms=10000) as permit:
                    print(f"holding fence={permit.fence}")
                    permit.wait_lost(30)
                    try:
                        permit.check()
                        print("not-lost")
                    except LeaseLost as lost:
                        print(f"lost why={lost.why} fence={lost.fence}")
            print("left-the-block")
            """#)
        #expect(run.waitForOutput("holding fence="), "\(run.output)")
        let fence = try #require(Self.lines(run.output, "holding ").first.flatMap { Int64(Self.fields($0)["fence"] ?? "") })
        #expect(try daemon.client().ask("revoke", [("fence", .integer(fence))]).ok)
        _ = run.waitForExit()
        #expect(run.exitCode == 0, "\(run.output)")
        #expect(run.output.contains("lost why=revoked fence=\(fence)\n"), "\(run.output)")
        #expect(run.output.contains("left-the-block"), "leaving the block after a lost lease raises nothing")
    }

    // MARK: - examples/python/agent_wrapper.py

    @Test func theAgentWrapperSharesTwoModelSlotsWithFallback() throws {
        let daemon = try Daemon(config: """
            [[providers]]
            name = "zai"
            models = ["glm-5"]

            [[providers]]
            name = "anthropic"
            models = ["claude-opus-4"]

            [[models]]
            name = "zai/glm-5"
            concurrency_limit = 1

            [[models]]
            name = "anthropic/claude-opus-4"
            concurrency_limit = 1
            """)
        let watcher = try daemon.client()
        #expect(try watcher.ask("watch").ok)
        let agents = 5
        let run = try ChildProcess([Self.python, "-u", Self.examples + "/python/agent_wrapper.py", "--agents", "\(agents)",
                                    "--work", "1"], environment: Self.environment(daemon))
        _ = run.waitForExit(milliseconds: 40_000)
        #expect(run.exitCode == 0, "\(run.output)")

        let models: Set<String> = ["zai/glm-5", "anthropic/claude-opus-4"]
        let lines = Self.lines(run.output, "agent-")
        #expect(lines.count == agents, "\(run.output)")
        #expect(Set(lines.map { $0.split(separator: " ")[0] }).count == agents, "one line per agent")
        for line in lines {
            let fields = Self.fields(line)
            #expect(models.contains(fields["model"] ?? "none"), "every agent got one of the two models: \(line)")
            let expectedRoute = fields["model"] == "zai/glm-5" ? "primary" : "chain"
            #expect(fields["route"] == expectedRoute, "\(line)")
        }
        #expect(lines.contains { Self.fields($0)["route"] == "chain" }, "at least one agent fell back: \(run.output)")
        #expect(run.output.contains("done: \(agents) agents, models used: "), "\(run.output)")

        // The daemon's own account, from watch events: every grant released, one holder per model at most.
        var held: [String: Int] = [:]
        var peak: [String: Int] = [:]
        var granted = 0
        var ended = 0
        while granted < agents || ended < agents {
            guard let event = try watcher.event(within: 10_000) else { break }
            let model = event["model"]?.stringValue ?? "none"
            switch event["event"]?.stringValue {
            case "granted":
                granted += 1
                held[model, default: 0] += 1
                peak[model] = max(peak[model] ?? 0, held[model]!)
            case "released", "expired", "revoked":
                ended += 1
                held[model, default: 0] -= 1
            default: break
            }
        }
        #expect(granted == agents && ended == agents)
        #expect(Set(peak.keys).isSubset(of: models) && peak.values.allSatisfy { $0 == 1 }, "\(peak)")
    }

    // MARK: - examples/bash/agent-fleet.sh

    @Test func theBashFleetRunsTenAgentsNeverMoreThanThreeAtOnce() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 3\n")
        let scratch = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let log = scratch + "/fleet.log"
        let run = try ChildProcess(["/bin/bash", Self.examples + "/bash/agent-fleet.sh"],
                                   environment: Self.environment(daemon, ["TURNSTILE": Binaries.turnstile, "FLEET_LOG": log]))
        _ = run.waitForExit(milliseconds: 40_000)
        #expect(run.exitCode == 0, "\(run.output)")

        let lines = Self.lines(run.output, "agent-")
        #expect(lines.count == 10, "\(run.output)")
        var fences: [Int] = []
        for line in lines {
            let fields = Self.fields(line)
            #expect(["alpha", "beta"].contains(fields["project"] ?? "") && ["time", "issue"].contains(fields["mode"] ?? ""),
                    "\(line)")
            #expect(fields["route"] == "primary" && (fields["model"]?.contains("/") ?? false), "TURNSTILE_MODEL/ROUTE: \(line)")
            if let fence = Int(fields["fence"] ?? "") { fences.append(fence) }
        }
        #expect(Set(fences).count == 10, "ten distinct fences from TURNSTILE_FENCE: \(run.output)")
        #expect(run.output.contains("fleet: 10 agents, 10 ok, 0 failed"), "\(run.output)")
        let order = run.output.split(separator: "\n").filter { $0.hasPrefix("  ") }.compactMap { Int($0.split(separator: " ")[0]) }
        #expect(order == fences.sorted(), "the grant order lists every agent by fence: \(run.output)")

        // Concurrency, from the agents' own start/end markers.
        let markers = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        var running = 0
        var peak = 0
        for marker in markers {
            if marker.hasPrefix("start ") { running += 1 } else if marker.hasPrefix("end ") { running -= 1 }
            peak = max(peak, running)
        }
        #expect(markers.filter { $0.hasPrefix("start ") }.count == 10 && markers.filter { $0.hasPrefix("end ") }.count == 10,
                "\(markers)")
        #expect(peak >= 1 && peak <= 3, "at most global = 3 agents ran at once (saw \(peak))")
        #expect(run.output.contains("max concurrent: \(peak) (global 3)"), "the script counts the same: \(run.output)")
        #expect(try Self.inUse(daemon) == 0)
    }

    // MARK: - examples/turnstile.toml

    @Test func theExampleConfigRunsTheDaemonAsDocumented() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/t.sock"
        let daemon = try ChildProcess([Binaries.turnstiled, "--config", Self.examples + "/turnstile.toml", "--socket", socket,
                                       "--state-dir", directory + "/state"])
        try #require(daemon.waitForOutput("turnstiled ready"), "\(daemon.output)")
        let client = try TurnstileClient(socketPath: socket)
        let status = try client.ask("status")
        #expect(status.string("fairness") == "round_robin")
        #expect(status["global"]?.objectValue?["limit"]?.numberValue?.int64 == 8)
        let modes = try #require(status["modes"]?.objectValue)
        #expect(modes["time"]?.objectValue?["limit"]?.numberValue?.int64 == 3)
        #expect(modes["issue"]?.objectValue?["limit"]?.numberValue?.int64 == 2)
        let projects = try #require(status["projects"]?.objectValue)
        #expect(projects["alpha"]?.objectValue?["limit"]?.numberValue?.int64 == 2)
        #expect(projects["alpha"]?.objectValue?["mention_limit"]?.numberValue?.int64 == 1)
        #expect(projects["beta"]?.objectValue?["limit"]?.numberValue?.int64 == 4)
        let models = try #require(status["models"]?.objectValue)
        #expect(models["anthropic/claude-opus-4"]?.objectValue?["limit"]?.numberValue?.int64 == 2)
        #expect(models["anthropic/claude-opus-4"]?.objectValue?["tier"]?.stringValue == "premium")
        #expect(models["zai/glm-5"]?.objectValue?["limit"]?.numberValue?.int64 == 1)
        #expect(models["zai/glm-4.7"] != nil && models["anthropic/claude-sonnet-4"] != nil)

        // The breaker's threshold and its on_trip command, as written.
        var tripped = false
        for _ in 0..<3 {
            let answer = try client.ask("report", [("project", .text("alpha")), ("agent", .text("project-meta")),
                                                   ("success", .bool(false))])
            tripped = tripped || answer["tripped"]?.boolValue == true
        }
        #expect(tripped, "threshold = 3")
        #expect(daemon.waitForOutput("turnstile: project alpha paused after 3 failures"), "on_trip ran: \(daemon.output)")

        daemon.signal(SIGTERM)
        _ = daemon.waitForExit()
        #expect(daemon.exitCode == 0)
    }

    @Test func theExampleConfigNamesEveryKeyTheParserAccepts() throws {
        let parser = try String(contentsOfFile: Binaries.packageRoot + "/Sources/TurnstileConfigFile/ConfigParser.swift",
                                encoding: .utf8)
        // Every `allowOnly([...])` list of the parser.
        var accepted: Set<String> = []
        var rest = parser[...]
        while let start = rest.range(of: "allowOnly([") {
            let end = try #require(rest[start.upperBound...].range(of: "])"))
            for piece in rest[start.upperBound..<end.lowerBound].split(separator: "\"", omittingEmptySubsequences: false).enumerated() where piece.offset % 2 == 1 {
                accepted.insert(String(piece.element))
            }
            rest = rest[end.upperBound...]
        }
        #expect(accepted.count >= 30, "found the parser's key lists: \(accepted.sorted())")

        let example = try String(contentsOfFile: Self.examples + "/turnstile.toml", encoding: .utf8)
        var set: Set<String> = []
        var commented: Set<String> = []
        var tables: Set<String> = []
        for raw in example.split(separator: "\n") {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                tables.insert(line.trimmingCharacters(in: CharacterSet(charactersIn: "[]")))
                continue
            }
            let isComment = line.hasPrefix("#")
            if isComment { line = line.dropFirst().trimmingCharacters(in: .whitespaces) }
            guard let equals = line.range(of: " = ") else { continue }
            let key = String(line[..<equals.lowerBound])
            guard key.allSatisfy({ $0.isLetter || $0 == "_" }) else { continue }
            if isComment { commented.insert(key) } else { set.insert(key) }
        }
        let machineSpecific: Set<String> = ["socket", "state_dir", "pause_dir", "socket_group"]
        // The daemon refuses [cluster] until it shares limits end to end (protocol/CLUSTER.md):
        // only the tests read it, and the example cannot show it yet.
        let refusedByTheDaemon: Set<String> = ["cluster"]
        for key in accepted.sorted() where !refusedByTheDaemon.contains(key) {
            if ["limits", "server", "projects", "pools", "providers", "models", "circuit_breaker", "telemetry"].contains(key) {
                #expect(tables.contains(key), "a [\(key)] table")
            } else if machineSpecific.contains(key) {
                #expect(commented.contains(key) && !set.contains(key), "\(key) is shown, commented out")
            } else {
                #expect(set.contains(key), "\(key) is set in examples/turnstile.toml")
            }
        }
        #expect(set.union(commented).isSubset(of: accepted), "no key the parser would refuse: \(set.union(commented).subtracting(accepted))")
    }

    // MARK: - examples/systemd

    @Test func theSystemdUnitsActivateNotifyReloadAndRestartTheDaemon() throws {
        func lines(_ file: String) throws -> [String] {
            let unit = try String(contentsOfFile: Self.examples + "/systemd/" + file, encoding: .utf8)
            return unit.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") }
        }
        let service = try lines("turnstile.service"), socket = try lines("turnstile.socket")
        func value(_ key: String, in lines: [String]) -> String? {
            lines.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        #expect(service.contains("[Service]") && service.contains("[Install]"))
        #expect(value("Type", in: service) == "notify", "the daemon sends READY=1")
        let start = try #require(value("ExecStart", in: service))
        #expect(start.split(separator: " ").first?.hasSuffix("/turnstiled") == true, "\(start)")
        #expect(value("ExecReload", in: service) == "/bin/kill -HUP $MAINPID")
        #expect(value("Restart", in: service) == "on-failure")
        #expect(value("KillSignal", in: service) == "SIGTERM")
        #expect(value("Requires", in: service) == "turnstile.socket")
        #expect(value("WantedBy", in: service) == "default.target", "a user unit")
        #expect(value("ListenStream", in: socket) == "%t/turnstile.sock", "where clients look by default")
        #expect(value("SocketMode", in: socket) == "0600")
        #expect(value("WantedBy", in: socket) == "sockets.target")
        let readme = try String(contentsOfFile: Self.examples + "/systemd/README.md", encoding: .utf8)
        #expect(readme.contains("socket activation") && readme.contains("loginctl enable-linger")
                && readme.contains("TURNSTILE_SOCKET"))
    }
}
