import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// A stray 429 or a far Retry-After date no longer blocks a provider or a model until it ends
/// (protocol/PROTOCOL.md §8.11, §8.21): `throttle --clear` and `unflag`, from the CLI and the
/// wire, journaled so that a restart does not bring them back; and typos are named (§4.1).
@Suite("Lifting throttles and flags; strict request fields", .timeLimit(.minutes(1)))
struct LiftingControlsIntegrationTests {
    @Test func throttleClearFromTheCLIWakesAWaiterAndSurvivesACrash() throws {
        let daemon = try Daemon()
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        #expect(try CLICommandTests.cli(daemon, ["throttle", "github", "--retry-after-header", "Sun, 06 Nov 9999 08:49:37 GMT"]).exitCode == 0)
        let client = try daemon.client()
        let waiting = try client.send("acquire", [("providers", .text("github")), ("wait_ms", .integer(30_000))])
        let zero = try CLICommandTests.cli(daemon, ["throttle", "github", "--retry-after", "0"])
        #expect(zero.exitCode == 0)
        #expect(zero.output.contains("stays throttled") && zero.output.contains("--clear"), "\(zero.output)")
        let cleared = try CLICommandTests.cli(daemon, ["throttle", "github", "--clear"])
        #expect(cleared.exitCode == 0 && cleared.output.contains("lifted the throttle on github"), "\(cleared.output)")
        #expect(try client.answer(to: waiting, timeoutMilliseconds: 10_000).ok, "the waiter it held is granted")
        #expect(try watcher.waitForEvent("throttle_cleared")?["provider"]?.stringValue == "github")
        let again = try CLICommandTests.cli(daemon, ["throttle", "github", "--clear"])
        #expect(again.output.contains("was not throttled"))
        daemon.crash()
        try daemon.start()
        let after = try daemon.client().ask("acquire", [("providers", .text("github"))])
        #expect(after.ok, "the lifting was journaled: \(after)")
    }

    @Test func unflagFromTheCLILiftsASubscriptionLimitAndSurvivesACrash() throws {
        let daemon = try Daemon(config: """
            [[providers]]
            name = "zai"
            models = ["glm-5"]
            """)
        let client = try daemon.client()
        _ = try client.ask("record", [("model", .text("zai/glm-5")), ("latency_ms", .integer(5)), ("success", .bool(false)),
                                      ("error", .text("weekly session limit reached"))])
        #expect(try client.ask("acquire", [("model", .text("zai/glm-5"))]).string("reason") == "model")
        let lifted = try CLICommandTests.cli(daemon, ["unflag", "zai/glm-5"])
        #expect(lifted.exitCode == 0 && lifted.output.contains("lifted"), "\(lifted.output)")
        #expect(try client.ask("acquire", [("model", .text("zai/glm-5"))]).ok)
        #expect(try CLICommandTests.cli(daemon, ["unflag", "zai/glm-5"]).output.contains("was not flagged"))
        daemon.crash()
        try daemon.start()
        let performance = try daemon.client().ask("performance", [("model", .text("zai/glm-5"))])
        let model = performance["models"]?.arrayValue?.first?.objectValue
        #expect(model?["subscription_limit_reached"]?.boolValue == false, "the lifting was journaled")
        #expect(model?["failed_completions"]?.numberValue?.int64 == 1, "the event stays")
    }

    @Test func aTypoIsRefusedByNameAndGrantsNothing() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1")
        let client = try daemon.client()
        let typo = try client.ask("acquire", [("projct", .text("a"))])
        #expect(typo.error == "bad_request" && typo.string("field") == "projct")
        #expect(try client.ask("acquire").ok, "the refused acquire took no slot")
    }
}
