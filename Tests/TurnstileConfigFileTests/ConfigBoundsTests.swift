import Testing
import TurnstileCore
@testable import TurnstileConfigFile

/// Every numeric key has an upper bound that no arithmetic on it can overflow with; a value
/// past it is refused naming file, line and key. State and pause directories must not overlap.
@Suite("Config numbers are bounded and directories cannot overlap")
struct ConfigBoundsTests {
    /// Each numeric key with the first value past its bound.
    static let tooLarge: [(table: String?, entry: String, key: String, value: String)] = [
        ("limits", "", "global", "4000000000000000000"), ("limits", "", "time", "1000001"),
        ("limits", "", "issue", "9223372036854775807"), ("limits", "", "priority_aging_ms", "31622400001"),
        ("limits", "", "default_ttl_ms", "86400001"),
        ("server", "", "max_connections", "1000001"), ("server", "", "max_pending_per_connection", "1000001"),
        ("server", "", "max_output_bytes", "1073741825"), ("server", "", "max_leases_per_connection", "1000001"),
        ("server", "", "max_waiters", "10000001"),
        ("circuit_breaker", "", "threshold", "1000001"),
        ("telemetry", "", "window_secs", "31622401"), ("telemetry", "", "subscription_limit_ttl_secs", "31622401"),
        ("telemetry", "", "max_models", "10000001"), ("telemetry", "", "max_events_per_model", "10000001"),
        ("telemetry", "", "max_sessions", "0"),
        ("[projects]", "name = \"a\"\n", "max", "1000001"), ("[projects]", "name = \"a\"\n", "max_mention", "1000001"),
        ("[models]", "name = \"m\"\n", "concurrency_limit", "1000001"),
    ]

    @Test(arguments: tooLarge.indices)
    func aValuePastItsBoundIsRefusedNamingFileLineAndKey(index: Int) {
        let entry = Self.tooLarge[index]
        let header = entry.table.map { "[\($0)]\n" } ?? ""
        let toml = header + entry.entry + "\(entry.key) = \(entry.value)\n"
        let table = entry.table.map { $0.hasPrefix("[") ? $0.filter { $0 != "[" && $0 != "]" } + "[1]" : $0 }
        do {
            _ = try ConfigParser.parse(toml, file: "big.toml")
            Issue.record("accepted \(toml)")
        } catch {
            #expect(error.file == "big.toml")
            #expect(error.key == [table, entry.key].compactMap { $0 }.joined(separator: "."), "\(error)")
            #expect(error.line == toml.split(separator: "\n").count, "\(error)")
            #expect(error.message.contains("from"), "\(error)")
        }
    }

    @Test func telemetryBoundsAreRead() throws {
        let config = try ConfigParser.parse("[telemetry]\nmax_models = 5\nmax_events_per_model = 6\nmax_sessions = 7\n",
                                            file: "t.toml")
        #expect(config.telemetry.bounds == Telemetry.Bounds(models: 5, eventsPerModel: 6, sessions: 7))
        #expect(try ConfigParser.parse("", file: "t.toml").telemetry.bounds
            == Telemetry.Bounds(models: 1000, eventsPerModel: 10_000, sessions: 10_000))
    }

    @Test func theLargestValuesAreAcceptedAndProportionalFairnessComputesWithThem() throws {
        let config = try ConfigParser.parse("""
            [limits]
            global = 1000000
            time = 1000000
            issue = 1000000
            fairness = "proportional"
            """, file: "t.toml")
        let broker = Broker(config: config, random: SplitMix64(seed: 1))
        let status = broker.status(now: Instant(milliseconds: 0))
        #expect(status.modes.first { $0.mode == .time }?.share == 500_000)
    }

    @Test(arguments: [
        ("state_dir = \"/s\"\npause_dir = \"/s\"\n", "the same directory"),
        ("state_dir = \"/s/\"\npause_dir = \"//s/./\"\n", "the same directory"),
        ("state_dir = \"/p/s\"\npause_dir = \"/p\"\n", "inside pause_dir"),
        ("state_dir = \"/p/x/../s\"\npause_dir = \"/p/\"\n", "inside pause_dir"),
        ("state_dir = \"/x\"\npause_dir = \"/\"\n", "inside pause_dir"),
    ])
    func overlappingStateAndPauseDirectoriesAreRefused(toml: String, says: String) {
        do {
            _ = try ConfigParser.parse(toml, file: "d.toml")
            Issue.record("accepted \(toml)")
        } catch {
            #expect(error.key == "pause_dir" && error.line == 2, "\(error)")
            #expect(error.message.contains(says), "\(error)")
        }
    }

    @Test func theDefaultLayoutAndSeparateDirectoriesAreFine() throws {
        _ = try ConfigParser.parse("state_dir = \"/s\"\npause_dir = \"/s/pause\"\n", file: "t.toml")
        _ = try ConfigParser.parse("state_dir = \"/s\"\npause_dir = \"/sp\"\n", file: "t.toml")
        #expect(DirectoryLayout.conflict(state: "state", pause: "/w/state", workingDirectory: "/w") != nil)
        #expect(DirectoryLayout.conflict(state: "state", pause: "state/pause", workingDirectory: "/w") == nil)
    }
}
