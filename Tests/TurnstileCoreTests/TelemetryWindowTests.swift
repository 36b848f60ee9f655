import Testing
@testable import TurnstileCore

/// The seed's `TelemetryStore` tests (terraphim orchestrator `control_plane/telemetry.rs`),
/// ported, plus what the spec adds: 429 as a whole number, import without invented events,
/// pruning by the window.
@Suite("Model telemetry: performance, usage and limit flags")
struct TelemetryWindowTests {
    let now = WallTime(unixMilliseconds: 1_790_000_000_000)

    /// The seed's `test_event` helper.
    func testEvent(_ model: String, _ success: Bool, _ latency: UInt64, at time: WallTime? = nil) -> CompletionEvent {
        CompletionEvent(model: model, sessionID: "test-session", completedAt: time ?? now, latencyMilliseconds: latency,
                        success: success, tokens: TokenBreakdown(total: 1000, input: 800, output: 200), costUSD: 0.01,
                        error: success ? nil : "rate limit exceeded")
    }

    @Test func recordAndQueryPerformance() {
        var store = Telemetry(windowSeconds: 3600)
        store.record(testEvent("model-a", true, 100))
        store.record(testEvent("model-a", true, 200))
        store.record(testEvent("model-a", false, 5000))
        let p = store.performance(of: "model-a", now: now)
        #expect(p.successfulCompletions == 2)
        #expect(p.failedCompletions == 1)
        #expect(abs(p.averageLatencyMilliseconds - 150.0) < 1.0, "the failure's 5000 ms is excluded")
        #expect(abs(p.successRate - 0.6667) < 0.01)
        #expect(p.subscriptionLimitReached)
        #expect(p.lastEventAt == now)
        #expect(abs(p.throughput - 2.0 / 3600) < 1e-9)
    }

    @Test func sessionUsage() {
        var store = Telemetry(windowSeconds: 3600)
        store.record(CompletionEvent(model: "model-a", sessionID: "sess-1", completedAt: now, latencyMilliseconds: 100,
                                     success: true, tokens: TokenBreakdown(total: 500, input: 400, output: 100),
                                     costUSD: 0.005))
        let usage = store.usage(session: "sess-1", now: now)
        #expect(usage.totals.totalTokens == 500)
        #expect(usage.totals.messageCount == 1)
        #expect(usage.byModel["model-a"] != nil)
        #expect(usage.byModel["model-a"]?.inputTokens == 400)
        #expect(usage.id == "sess-1")
        #expect(usage.windowEnd == now)
        #expect(store.usage(session: "other", now: now).totals == ModelUsage())
    }

    @Test func unknownModelReturnsEmpty() {
        let store = Telemetry(windowSeconds: 3600)
        let p = store.performance(of: "unknown", now: now)
        #expect(p.successfulCompletions == 0)
        #expect(!p.subscriptionLimitReached)
        #expect(p == ModelPerformance.empty(model: "unknown", windowSeconds: 3600))
    }

    @Test func importSummaryRestoresEvents() {
        var store = Telemetry(windowSeconds: 3600)
        store.record(CompletionEvent(model: "model-a", sessionID: "sess-1", completedAt: now, latencyMilliseconds: 200,
                                     success: true, tokens: TokenBreakdown(total: 1000, input: 800, output: 200),
                                     costUSD: 0.01))
        #expect(store.performance(of: "model-a", now: now).successfulCompletions == 1)
        let summary = store.exportSummary(now: now)
        var restored = Telemetry(windowSeconds: 3600)
        restored.importSummary(summary, now: now.adding(milliseconds: 1000))
        let p = restored.performance(of: "model-a", now: now.adding(milliseconds: 1000))
        #expect(p.successfulCompletions == 1, "exactly the real event, none invented")
        #expect(p.averageLatencyMilliseconds == 200)
        #expect(restored.usage(session: "sess-1", now: now).totals.totalTokens == 1000, "session usage survives too")
    }

    @Test func importSummaryRestoresSubscriptionLimits() {
        var store = Telemetry(windowSeconds: 3600)
        store.record(CompletionEvent(model: "model-b", sessionID: "sess-2", completedAt: now, latencyMilliseconds: 100,
                                     success: false, error: "weekly session limit reached"))
        let summary = store.exportSummary(now: now)
        var restored = Telemetry(windowSeconds: 3600)
        let flags = restored.importSummary(summary, now: now)
        #expect(restored.performance(of: "model-b", now: now).subscriptionLimitReached)
        #expect(flags.map(\.model) == ["model-b"])
    }

    @Test func importSummaryPrunesStaleData() {
        let old = now.adding(milliseconds: -7_200_000)
        let stale = ModelPerformance(model: "stale-model", successfulCompletions: 5, failedCompletions: 0, successRate: 1,
                                     averageLatencyMilliseconds: 500, throughput: 0.001, windowSeconds: 3600,
                                     lastEventAt: old, subscriptionLimitReached: false, subscriptionLimitExpiresAt: nil)
        let staleEvent = CompletionEvent(model: "stale-model", completedAt: old, latencyMilliseconds: 500, success: true)
        var restored = Telemetry(windowSeconds: 3600)
        restored.importSummary(TelemetrySummary(windowSeconds: 3600, exportedAt: old, modelPerformances: [stale],
                                                events: [staleEvent]), now: now)
        #expect(restored.performance(of: "stale-model", now: now).successfulCompletions == 0)
    }

    @Test func seedFormatSummaryRestoresNoInventedCounts() {
        // A summary holding only snapshots (the seed's format) restores its flag but no counts:
        // counts cannot be restored without inventing events.
        let snapshot = ModelPerformance(model: "model-c", successfulCompletions: 7, failedCompletions: 2, successRate: 0.7,
                                        averageLatencyMilliseconds: 300, throughput: 0.002, windowSeconds: 3600,
                                        lastEventAt: now, subscriptionLimitReached: true,
                                        subscriptionLimitExpiresAt: now.adding(milliseconds: 60_000))
        var restored = Telemetry(windowSeconds: 3600)
        restored.importSummary(TelemetrySummary(windowSeconds: 3600, exportedAt: now, modelPerformances: [snapshot]),
                               now: now)
        let p = restored.performance(of: "model-c", now: now)
        #expect(p.successfulCompletions == 0 && p.failedCompletions == 0)
        #expect(p.subscriptionLimitReached)
    }

    @Test func subscriptionLimitDetection() {
        #expect(SubscriptionLimitDetector.isLimit(error: "weekly session limit reached"))
        #expect(SubscriptionLimitDetector.isLimit(error: "Rate Limit Exceeded - try again later"))
        #expect(SubscriptionLimitDetector.isLimit(error: "Error 429: Too Many Requests"))
        #expect(SubscriptionLimitDetector.isLimit(error: "Quota exceeded for this billing period"))
        #expect(!SubscriptionLimitDetector.isLimit(error: "connection refused"))
        #expect(!SubscriptionLimitDetector.isLimit(error: "syntax error in response"))
    }

    @Test(arguments: SubscriptionLimitDetector.patterns)
    func everyPatternMatchesCaseInsensitively(pattern: String) {
        #expect(SubscriptionLimitDetector.isLimit(error: "Provider said: \(pattern.uppercased())!"))
    }

    @Test func fourTwoNineIsMatchedAsAWholeNumberOnly() {
        #expect(SubscriptionLimitDetector.isLimit(error: "HTTP 429"))
        #expect(SubscriptionLimitDetector.isLimit(error: "status=429;"))
        #expect(SubscriptionLimitDetector.isLimit(error: "429"))
        #expect(!SubscriptionLimitDetector.isLimit(error: "used 14290 tokens"))
        #expect(!SubscriptionLimitDetector.isLimit(error: "request 4291 failed"))
        #expect(!SubscriptionLimitDetector.isLimit(error: "id 1429"))
        #expect(SubscriptionLimitDetector.isLimit(error: "boom", status: 429))
        #expect(!SubscriptionLimitDetector.isLimit(error: "boom", status: 500))
        #expect(!SubscriptionLimitDetector.isLimit(error: nil, status: nil))
    }

    @Test func eventsOlderThanTheWindowNeverCount() {
        var store = Telemetry(windowSeconds: 60)
        store.record(testEvent("m", true, 10, at: now))
        let later = now.adding(milliseconds: 60_000)
        #expect(store.performance(of: "m", now: later).successfulCompletions == 0, "exactly one window old: gone")
        #expect(store.performance(of: "m", now: now.adding(milliseconds: 59_999)).successfulCompletions == 1)
        #expect(store.performance(of: "m", now: later).lastEventAt == nil)
    }

    @Test func subscriptionFlagHasATTL() {
        var store = Telemetry(windowSeconds: 3600, subscriptionLimitTTLSeconds: 10)
        let flag = store.record(CompletionEvent(model: "zai/glm-5", completedAt: now, latencyMilliseconds: 1,
                                                success: false, error: "You've hit your limit"))
        #expect(flag == Telemetry.Flag(model: "zai/glm-5", expiresAt: now.adding(milliseconds: 10_000)))
        #expect(store.performance(of: "zai/glm-5", now: now.adding(milliseconds: 9_999)).subscriptionLimitReached)
        let expired = store.performance(of: "zai/glm-5", now: now.adding(milliseconds: 10_000))
        #expect(!expired.subscriptionLimitReached)
        #expect(expired.subscriptionLimitExpiresAt == now.adding(milliseconds: 10_000))
    }

    @Test func lastEventTimesAreRFC3339WithMilliseconds() {
        #expect(CivilTime.rfc3339(WallTime(unixMilliseconds: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(CivilTime.rfc3339(WallTime(unixMilliseconds: 1_790_000_000_123)) == "2026-09-21T14:13:20.123Z")
        #expect(CivilTime.rfc3339(WallTime(unixMilliseconds: 951_782_400_000)) == "2000-02-29T00:00:00.000Z")
        #expect(CivilTime.rfc3339(WallTime(unixMilliseconds: -1)) == "1969-12-31T23:59:59.999Z")
    }
}
