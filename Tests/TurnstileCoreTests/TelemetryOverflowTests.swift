import Testing
@testable import TurnstileCore

/// Numbers a client records are summed and averaged; no value they can send may overflow a
/// sum (which would stop the daemon on every later read of persisted events).
@Suite("Telemetry sums saturate instead of overflowing")
struct TelemetryOverflowTests {
    let now = WallTime(unixMilliseconds: 1_790_000_000_000)
    let huge = UInt64(Int64.max)

    func event(_ tokens: UInt64, cost: Double = 0, latency: UInt64 = 1, success: Bool = true) -> CompletionEvent {
        CompletionEvent(model: "a/m", sessionID: "s", completedAt: now, latencyMilliseconds: latency, success: success,
                        tokens: TokenBreakdown(total: tokens, input: tokens, output: tokens), costUSD: cost)
    }

    @Test func tokenSumsSaturateAtTheLargestCount() {
        var store = Telemetry()
        for _ in 0..<3 { store.record(event(huge)) }
        let usage = store.usage(session: "s", now: now)
        #expect(usage.byModel["a/m"]?.inputTokens == UInt64.max)
        #expect(usage.totals.inputTokens == UInt64.max)
        #expect(usage.totals.outputTokens == UInt64.max)
        #expect(usage.totals.totalTokens == UInt64.max)
        #expect(usage.totals.messageCount == 3)
    }

    @Test func totalsAcrossModelsSaturateToo() {
        var store = Telemetry()
        for model in ["a/m", "b/m", "c/m"] {
            var e = event(huge)
            e.model = model
            store.record(e)
        }
        #expect(store.usage(session: "s", now: now).totals.inputTokens == UInt64.max)
    }

    @Test func aCostSumStaysFinite() {
        var store = Telemetry()
        for _ in 0..<3 { store.record(event(1, cost: .greatestFiniteMagnitude)) }
        let cost = store.usage(session: "s", now: now).totals.costUSD
        #expect(cost == .greatestFiniteMagnitude)
        #expect(store.usage(session: "s", now: now).byModel["a/m"]?.costUSD == .greatestFiniteMagnitude)
    }

    @Test func hugeLatenciesAverageWithoutOverflow() {
        var store = Telemetry()
        for _ in 0..<3 { store.record(event(1, latency: UInt64.max)) }
        let performance = store.performance(of: "a/m", now: now)
        #expect(performance.successfulCompletions == 3)
        #expect(performance.averageLatencyMilliseconds.isFinite)
        #expect(performance.averageLatencyMilliseconds > 1e19)
    }

    @Test func hugeWindowsAndFlagTTLsSaturate() {
        var store = Telemetry(windowSeconds: UInt64.max, subscriptionLimitTTLSeconds: UInt64.max)
        var failure = event(1, success: false)
        failure.error = "quota exceeded"
        let flag = store.record(failure)
        #expect(flag?.expiresAt == WallTime(unixMilliseconds: Int64.max))
        #expect(store.performance(of: "a/m", now: now).failedCompletions == 1)
        #expect(store.exportSummary(now: now).events.count == 1)
    }

    @Test func saturatingHelpersClampBothWays() {
        #expect(Int64.max.addingSaturated(1) == .max)
        #expect(Int64.min.addingSaturated(-1) == .min)
        #expect(Int64.max.multipliedSaturated(by: -2) == .min)
        #expect(Int64(-3).multipliedSaturated(by: -Int64.max) == .max)
        #expect(UInt64.max.addingSaturated(1) == .max)
        #expect((-Double.greatestFiniteMagnitude).addingSaturated(-.greatestFiniteMagnitude) == -.greatestFiniteMagnitude)
        #expect(WallTime(unixMilliseconds: .min).milliseconds(since: WallTime(unixMilliseconds: 1)) == .min)
    }
}
