import Testing
@testable import TurnstileCore

/// Clients name models and sessions freely: telemetry keeps at most `max_models` models,
/// `max_events_per_model` events per model and `max_sessions` sessions, evicting the least
/// recently recorded first and counting what it evicted.
@Suite("Telemetry stays within its bounds, evicting the least recently recorded")
struct TelemetryBoundsTests {
    let start = WallTime(unixMilliseconds: 1_790_000_000_000)

    func event(_ model: String, session: String? = nil, at second: Int64, error: String? = nil) -> CompletionEvent {
        CompletionEvent(model: model, sessionID: session, completedAt: start.adding(milliseconds: second * 1000),
                        latencyMilliseconds: 1, success: error == nil, tokens: TokenBreakdown(total: 1), error: error)
    }

    var now: WallTime { start.adding(milliseconds: 100_000) }

    @Test func theLeastRecentlyRecordedModelIsEvictedFirst() {
        var store = Telemetry(bounds: .init(models: 2))
        store.record(event("a/1", at: 1))
        store.record(event("a/2", at: 2))
        store.record(event("a/1", at: 3))
        store.record(event("a/3", at: 4))
        #expect(store.performances(now: now).map(\.model) == ["a/1", "a/3"], "a/2 was the least recent")
        #expect(store.evictions.models == 1)
        store.record(event("a/4", at: 5))
        #expect(store.performances(now: now).map(\.model) == ["a/3", "a/4"])
        #expect(store.evictions.models == 2)
    }

    @Test func aNewModelEachTimeKeepsOnlyTheBound() {
        var store = Telemetry(bounds: .init(models: 1000))
        for index in 0..<20_000 { store.record(event("p/m\(index)", session: "s\(index)", at: 1)) }
        #expect(store.performances(now: now).count == 1000)
        #expect(store.evictions.models == 19_000)
        #expect(store.exportSummary(now: now).events.count == 1000)
        #expect(store.evictions.sessions == 10_000)
    }

    @Test func aModelKeepsItsNewestEvents() {
        var store = Telemetry(bounds: .init(eventsPerModel: 3))
        for second in 1...5 { store.record(event("a/1", at: Int64(second))) }
        let kept = store.exportSummary(now: now).events.map(\.completedAt)
        #expect(kept == (3...5).map { start.adding(milliseconds: Int64($0) * 1000) })
        #expect(store.evictions.events == 2)
        #expect(store.performance(of: "a/1", now: now).successfulCompletions == 3)
    }

    @Test func theLeastRecentSessionIsForgottenButItsEventsStillCount() {
        var store = Telemetry(bounds: .init(sessions: 2))
        store.record(event("a/1", session: "s1", at: 1))
        store.record(event("a/1", session: "s2", at: 2))
        store.record(event("a/1", session: "s1", at: 3))
        store.record(event("a/1", session: "s3", at: 4))
        #expect(store.usage(session: "s2", now: now).totals == ModelUsage(), "s2 was the least recent")
        #expect(store.usage(session: "s1", now: now).totals.messageCount == 2)
        #expect(store.usage(session: "s3", now: now).totals.messageCount == 1)
        #expect(store.evictions.sessions == 1)
        #expect(store.performance(of: "a/1", now: now).successfulCompletions == 4)
        #expect(!store.exportSummary(now: now).events.contains { $0.sessionID == "s2" }, "not persisted either")
    }

    @Test func loweringTheBoundsOnReloadEvictsAtOnce() {
        var store = Telemetry()
        for index in 0..<5 {
            for second in 1...4 { store.record(event("a/\(index)", session: "s\(index)", at: Int64(index * 10 + second))) }
        }
        store.configure(windowSeconds: 3600, subscriptionLimitTTLSeconds: 3600,
                        bounds: .init(models: 2, eventsPerModel: 1, sessions: 1))
        #expect(store.performances(now: now).map(\.model) == ["a/3", "a/4"])
        #expect(store.exportSummary(now: now).events.count == 2)
        #expect(store.evictions == {
            var expected = Telemetry.Evictions()
            (expected.models, expected.events, expected.sessions) = (3, 6, 4)
            return expected
        }())
    }

    @Test func aRestoreKeepsTheMostRecentWithinTheBounds() {
        var full = Telemetry()
        for index in 0..<4 { full.record(event("a/\(index)", at: Int64(index + 1))) }
        var small = Telemetry(bounds: .init(models: 2))
        small.importSummary(full.exportSummary(now: now), now: now)
        #expect(small.performances(now: now).map(\.model) == ["a/2", "a/3"])
    }

    @Test func theBrokerForgetsTheFlagsOfEvictedModels() {
        var h = Harness {
            $0.telemetry.bounds = .init(models: 1)
            $0.limits.global = 4
        }
        h.broker.decideRecord(event("p/flagged", at: 1, error: "quota exceeded"), now: h.now)
        #expect(h.acquire(model: "p/flagged").refusal?.reason == .model)
        h.broker.decideRecord(event("p/other", at: 2), now: h.now)
        #expect(h.acquire(model: "p/flagged").lease != nil, "its flag went with it")
        #expect(h.broker.nextDeadline() != nil)
        #expect(h.broker.telemetry.evictions.models == 1)
    }

    @Test func recencyListEvictsInLeastRecentOrderAndReusesNodes() {
        var list = RecencyList<Int>()
        for key in 0..<5 { list.touch(key) }
        list.touch(0)
        list.remove(2)
        var order: [Int] = []
        while let oldest = list.leastRecent {
            order.append(oldest)
            list.remove(oldest)
        }
        #expect(order == [1, 3, 4, 0])
        list.touch(7)
        #expect(list.count == 1 && list.leastRecent == 7 && list.contains(7) && !list.contains(0))
    }
}
