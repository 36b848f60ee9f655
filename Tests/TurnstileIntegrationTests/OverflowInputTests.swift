import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Numbers and dates at the edges of their ranges reach sums, products and calendar
/// arithmetic in the daemon: each is answered (or saturates) and the daemon lives on.
@Suite("Overflowing input", .timeLimit(.minutes(1)))
struct OverflowInputTests {
    @Test func usageOfHugeTokenCountsAnswersAndTheDaemonLives() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let tokens = JSONValue.object(JSONObject([("input", .integer(Int64.max)), ("output", .integer(Int64.max)),
                                                 ("total", .integer(Int64.max))]))
        for _ in 0..<3 {
            let recorded = try client.ask("record", [("model", .text("a/m")), ("session_id", .text("s")),
                                                     ("latency_ms", .integer(Int64.max)), ("success", .bool(true)),
                                                     ("tokens", tokens), ("cost_usd", .number(JSONNumber(text: "1e308")))])
            #expect(recorded.ok, "\(recorded.object)")
        }
        let usage = try client.ask("usage", [("session_id", .text("s"))])
        #expect(usage.ok, "\(usage.object)")
        let totals = usage["usage"]?.objectValue?["totals"]?.objectValue
        #expect(totals?["input_tokens"]?.numberValue?.uint64 == UInt64.max)
        #expect(totals?["message_count"]?.numberValue?.int64 == 3)
        #expect(totals?["cost_usd"]?.numberValue?.double == Double.greatestFiniteMagnitude, "finite, not null")
        #expect(try client.ask("performance", [("model", .text("a/m"))]).ok)
        #expect(try daemon.client().ask("hello").ok, "still alive")
        #expect(daemon.process?.waitForExit(milliseconds: 0) == nil)
    }
}
