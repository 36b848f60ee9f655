import Testing
@testable import TurnstileCore

/// An operator can lift what a stray 429 or a far Retry-After date put in force: a throttle
/// (`throttle` with `clear: true`) and a subscription-limit flag (`unflag`). Waiters they held
/// are granted at once.
@Suite("Lifting throttles and subscription-limit flags")
struct LiftingControlsTests {
    @Test func clearingAThrottleGrantsTheWaitersItHeld() {
        var h = Harness()
        h.broker.decideThrottle(provider: "OpenAI", tenant: "t", retryAfterMilliseconds: 7 * 86_400_000, now: h.now)
        let waiting = h.acquire(providers: ["openai"], tenant: "t", wait: 60_000)
        #expect(waiting.refusal?.reason == .rateLimit)
        _ = h.effects()
        let cleared = h.broker.decideClearThrottle(provider: "openai", tenant: "t", now: h.now)
        #expect(cleared)
        let effects = h.effects()
        #expect(effects.contains(.throttleCleared(provider: "openai", tenant: "t")))
        #expect(effects.contains { if case .granted = $0 { true } else { false } }, "the waiter is granted at once")
        #expect(h.broker.status(now: h.now).throttles.isEmpty)
        #expect(h.violations().isEmpty)
    }

    @Test func clearingIsPerTenantAndSaysWhetherOneWasInForce() {
        var h = Harness()
        h.broker.decideThrottle(provider: "p", tenant: "a", retryAfterMilliseconds: 60_000, now: h.now)
        h.broker.decideThrottle(provider: "p", tenant: "b", retryAfterMilliseconds: 60_000, now: h.now)
        let first = h.broker.decideClearThrottle(provider: "p", tenant: "a", now: h.now)
        let second = h.broker.decideClearThrottle(provider: "p", tenant: "a", now: h.now)
        #expect(first && !second, "nothing left to clear the second time")
        let other = h.acquire(providers: ["p"], tenant: "b")
        #expect(other.refusal?.reason == .rateLimit, "b keeps its throttle")
        h.advance(60_000)
        let ended = h.broker.decideClearThrottle(provider: "p", tenant: "b", now: h.now)
        #expect(!ended, "an ended throttle is not in force")
    }

    @Test func aZeroRetryAfterNeverShortensALongerThrottle() {
        var h = Harness()
        h.broker.decideThrottle(provider: "p", tenant: "local", retryAfterMilliseconds: 60_000, now: h.now)
        let inForce = h.broker.decideThrottle(provider: "p", tenant: "local", retryAfterMilliseconds: 0, now: h.now)
        #expect(inForce == 60_000)
    }

    @Test func unflaggingFreesTheModelForTheLimiterAndForPerformance() {
        var h = Harness { $0.providers = [ProviderConfig(name: "a", models: ["m"])] }
        h.broker.decideRecord(CompletionEvent(model: "a/m", completedAt: h.wall, latencyMilliseconds: 1, success: false,
                                        status: 429), now: h.now)
        let waiting = h.acquire(model: "a/m", wait: 60_000)
        #expect(waiting.refusal?.reason == .model)
        _ = h.effects()
        let lifted = h.broker.decideUnflag(model: " a/m ", now: h.now, wall: h.wall)
        #expect(lifted)
        let effects = h.effects()
        #expect(effects.contains(.unflagged(model: "a/m")))
        #expect(effects.contains { if case .granted = $0 { true } else { false } })
        let performance = h.broker.performance(model: "a/m", wall: h.wall).first
        #expect(performance?.subscriptionLimitReached == false)
        #expect(performance?.failedCompletions == 1, "the events stay")
        let again = h.broker.decideUnflag(model: "a/m", now: h.now, wall: h.wall)
        #expect(!again)
        #expect(h.violations().isEmpty)
    }
}
