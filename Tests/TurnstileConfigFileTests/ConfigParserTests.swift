import Testing
import TurnstileCore
@testable import TurnstileConfigFile

/// The TOML config: defaults, every key of the README's configuration table, and refusals that name file, line and key.
@Suite("Config parsing")
struct ConfigParserTests {
    static let sketch = """
        socket = "/run/user/1000/turnstile.sock"
        state_dir = "/home/me/.local/state/turnstile"
        pause_dir = "/home/me/.local/state/turnstile/pause"
        socket_mode = "0660"
        allow_uids = [1001]
        admin_uids = [1002, 1003]

        [limits]
        global = 8
        time = 3
        issue = 2
        fairness = "Round-Robin"
        default_ttl_ms = 30000
        priority_aging_ms = 0

        [server]
        max_connections = 20000

        [[projects]]
        name = "alpha"
        max = 2
        max_mention = 1

        [[projects]]
        name = "beta"
        max_mention = 3

        [[pools]]
        name = "gpu"
        limit = 1

        [[pools]]
        name = "test-db"
        limit = 4

        [[providers]]
        name = "anthropic"
        kind = "api"
        models = ["claude-opus-4", "claude-sonnet-4"]

        [[providers]]
        name = "claude-cli"
        kind = "cli"
        models = ["opus"]

        [[models]]
        name = "claude-opus-4"
        concurrency_limit = 2
        tier = "premium"
        tools = true

        [[models]]
        name = "zai/glm-5"
        concurrency_limit = 1

        [circuit_breaker]
        threshold = 3
        on_trip = "notify-send 'turnstile: project paused'"

        [telemetry]
        window_secs = 3600
        subscription_limit_ttl_secs = 600
        """

    @Test func emptyFileGivesTheEmbeddedDefaults() throws {
        let config = try ConfigParser.parse("", file: "t.toml")
        #expect(config == TurnstileConfig())
        #expect(config.limits.global == 8 && config.limits.time == 3 && config.limits.issue == 2)
        #expect(config.limits.fairness == .roundRobin)
        #expect(config.limits.defaultTTLMilliseconds == 30_000)
        #expect(config.access.socketMode == 0o600)
    }

    @Test func theSpecSketchParses() throws {
        let config = try ConfigParser.parse(Self.sketch, file: "t.toml")
        #expect(config.socketPath == "/run/user/1000/turnstile.sock")
        #expect(config.pauseDirectory == "/home/me/.local/state/turnstile/pause")
        #expect(config.access.socketMode == 0o660)
        #expect(config.access.allowUIDs == [1001] && config.access.adminUIDs == [1002, 1003])
        #expect(config.limits.fairness == .roundRobin)
        #expect(config.limits.priorityAgingMilliseconds == 0)
        #expect(config.server.maxConnections == 20_000)
        #expect(config.projects == [ProjectConfig(name: "alpha", max: 2, maxMention: 1),
                                    ProjectConfig(name: "beta", maxMention: 3)])
        #expect(config.pools == [PoolConfig(name: "gpu", limit: 1), PoolConfig(name: "test-db", limit: 4)])
        #expect(config.providers.map(\.kind) == [.api, .cli])
        #expect(config.providers[0].models == ["claude-opus-4", "claude-sonnet-4"])
        #expect(config.models[0] == ModelConfig(name: "claude-opus-4", concurrencyLimit: 2, tier: .premium, tools: true))
        #expect(config.models[1].name == "zai/glm-5")
        #expect(config.circuitBreaker.onTrip == "notify-send 'turnstile: project paused'")
        #expect(config.telemetry.subscriptionLimitTTLSeconds == 600)
    }

    struct Refusal: CustomTestStringConvertible, Sendable {
        let toml: String
        let line: Int?
        let key: String?
        let says: String
        var testDescription: String { says }
    }

    static let refusals: [Refusal] = [
        Refusal(toml: "[limits]\nglobal = -1\n", line: 2, key: "limits.global", says: "from 0 to 1000000"),
        Refusal(toml: "[limits]\nglobal = \"8\"\n", line: 2, key: "limits.global", says: "whole number"),
        Refusal(toml: "[limits]\n\nfairness = \"lottery\"\n", line: 3, key: "limits.fairness", says: "unknown fairness policy: lottery"),
        Refusal(toml: "[limits]\ndefault_ttl_ms = 50\n", line: 2, key: "limits.default_ttl_ms", says: "from 100"),
        Refusal(toml: "[limits]\nglobl = 3\n", line: 2, key: "limits.globl", says: "unknown key"),
        Refusal(toml: "sokcet = \"/x\"\n", line: 1, key: "sokcet", says: "unknown key"),
        Refusal(toml: "[limits]\nglobal = 2\n\n[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\n", line: 4, key: "cluster.shared",
                says: "is required"),
        Refusal(toml: "[[projects]]\nname = \"a\"\n[[projects]]\nname = \"a\"\n", line: 4, key: "projects[2].name", says: "duplicate project a"),
        Refusal(toml: "[[projects]]\nname = \"a/b\"\n", line: 2, key: "projects[1].name", says: "cannot contain '/'"),
        Refusal(toml: "[[projects]]\nmax = 2\n", line: 1, key: "projects[1].name", says: "is required"),
        Refusal(toml: "[[projects]]\nname = \"a\"\nmax = -2\n", line: 3, key: "projects[1].max", says: "from 0 to 1000000"),
        Refusal(toml: "[[pools]]\nname = \"gpu\"\nlimit = 1\n[[pools]]\nname = \"gpu\"\nlimit = 2\n", line: 5, key: "pools[2].name", says: "duplicate pool gpu"),
        Refusal(toml: "[[pools]]\nname = \"gpu\"\n", line: 1, key: "pools[1].limit", says: "needs a limit"),
        Refusal(toml: "[[pools]]\nname = \"gpu\"\nlimit = 0\n", line: 3, key: "pools[1].limit", says: "from 1 to 1000000"),
        Refusal(toml: "[[pools]]\nname = \"gpu\"\nlimit = 1000001\n", line: 3, key: "pools[1].limit", says: "from 1 to 1000000"),
        Refusal(toml: "[[pools]]\nname = \"\"\nlimit = 1\n", line: 2, key: "pools[1].name", says: "is empty"),
        Refusal(toml: "[[pools]]\nname = \"a\\u0007\"\nlimit = 1\n", line: 2, key: "pools[1].name", says: "control characters"),
        Refusal(toml: "[[pools]]\nname = \"gpu\"\nlimt = 1\n", line: 3, key: "pools[1].limt", says: "unknown key"),
        Refusal(toml: "[[models]]\nname = \"x\"\ntier = \"gold\"\n", line: 3, key: "models[1].tier", says: "unknown tier gold"),
        Refusal(toml: "[[models]]\nname = \"x\"\n[[models]]\nname = \"x\"\n", line: 4, key: "models[2].name", says: "duplicate model x"),
        Refusal(toml: "[[providers]]\nname = \"p\"\nkind = \"grpc\"\n", line: 3, key: "providers[1].kind", says: "\"api\" or \"cli\""),
        Refusal(toml: "[[providers]]\nname = \"p\"\nmodels = [\"p/x\"]\n", line: 3, key: "providers[1].models", says: "bare names"),
        Refusal(toml: "socket_mode = \"0400\"\n", line: 1, key: "socket_mode", says: "owner's read and write"),
        Refusal(toml: "[telemetry]\nwindow_secs = 0\n", line: 2, key: "telemetry.window_secs", says: "from 1 to 31622400"),
        Refusal(toml: "limits = 3\n", line: 1, key: "limits", says: "must be a table"),
        Refusal(toml: "[limits]\nglobal = 8\nglobal = 9\n", line: 3, key: nil, says: "cannot redefine"),
        Refusal(toml: "[limits\nglobal = 8\n", line: 1, key: nil, says: "expected ']'"),
    ]

    @Test(arguments: refusals)
    func refusesBadFilesNamingLineAndKey(refusal: Refusal) {
        do {
            _ = try ConfigParser.parse(refusal.toml, file: "bad.toml")
            Issue.record("accepted: \(refusal.toml)")
        } catch {
            #expect(error.file == "bad.toml")
            #expect(error.line == refusal.line, "\(error)")
            #expect(error.key == refusal.key, "\(error)")
            #expect(error.message.contains(refusal.says), "\(error)")
            #expect(error.description.hasPrefix("bad.toml:\(refusal.line ?? 0)"), "\(error)")
        }
    }
}
