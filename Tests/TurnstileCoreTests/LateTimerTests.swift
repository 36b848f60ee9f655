import Testing
@testable import TurnstileCore

/// The daemon's timer may fire after a throttle or flag has ended: a request handled in
/// between must see the waiters that block held granted first, never take a permit ahead of
/// them (README, "Waiting and fairness": a slot is never left to a newcomer while an eligible waiter waits).
@Suite("Blocks that end by the clock lift before any later request")
struct LateTimerTests {
    /// Moves the clock without serving deadlines: the timer has not fired yet.
    func late(_ h: inout Harness, by milliseconds: UInt64) {
        h.now = h.now.adding(milliseconds: milliseconds)
        h.wall = h.wall.adding(milliseconds: Int64(milliseconds))
    }

    @Test func aWaiterHeldByAThrottleIsServedBeforeANewcomer() {
        var h = Harness { $0.limits.global = 1 }
        h.broker.decideThrottle(provider: "gh", tenant: "local", retryAfterMilliseconds: 1000, now: h.now)
        let waiter = h.acquire(providers: ["gh"], wait: 60_000)
        #expect(waiter.refusal?.reason == .rateLimit)
        _ = h.effects()
        late(&h, by: 1000)
        let newcomer = h.acquire(wait: 0)
        #expect(newcomer.refusal?.reason == .global, "the newcomer is refused: the waiter took the permit")
        #expect(h.grantedTickets().count == 1, "the waiter was granted")
        #expect(h.violations().isEmpty)
    }

    @Test func aWaitingNewcomerQueuesBehindTheWaiter() {
        var h = Harness { $0.limits.global = 1 }
        h.broker.decideThrottle(provider: "gh", tenant: "local", retryAfterMilliseconds: 500, now: h.now)
        #expect(h.acquire(providers: ["gh"], wait: 60_000).isQueued)
        _ = h.effects()
        late(&h, by: 700)
        #expect(h.acquire(wait: 60_000).isQueued)
        #expect(h.grantedTickets().count == 1)
        #expect(h.broker.waiterCount == 1)
    }

    @Test func aWaiterHeldByASubscriptionLimitFlagIsServedBeforeANewcomer() {
        var h = Harness {
            $0.limits.global = 1
            $0.telemetry.subscriptionLimitTTLSeconds = 1
        }
        h.broker.decideRecord(CompletionEvent(model: "p1/x", completedAt: h.wall, latencyMilliseconds: 1, success: false,
                                        error: "quota exceeded"), now: h.now)
        let waiter = h.acquire(model: "p1/x", wait: 60_000)
        #expect(waiter.refusal?.reason == .model)
        _ = h.effects()
        late(&h, by: 1000)
        let newcomer = h.acquire(model: "p1/x", wait: 0)
        #expect(newcomer.refusal?.reason == .global)
        #expect(h.grantedTickets().count == 1)
        #expect(h.violations().isEmpty)
    }

    /// Any call that takes `now` lifts ended blocks first, not only acquire.
    @Test(arguments: ["heartbeat", "release", "cancel", "pause", "record", "throttle"])
    func everyEntryPointLiftsEndedBlocksFirst(operation: String) {
        var h = Harness { $0.limits.global = 2 }
        let held = h.grant(detach: true)!
        h.broker.decideThrottle(provider: "gh", tenant: "t", retryAfterMilliseconds: 100, now: h.now)
        #expect(h.acquire(providers: ["gh"], tenant: "t", wait: 60_000).isQueued)
        _ = h.effects()
        late(&h, by: 100)
        #expect(!h.violations().isEmpty, "before any call the waiter could be granted but waits")
        switch operation {
        case "release": _ = h.broker.decideRelease(held.token, now: h.now)
        case "cancel": _ = h.broker.decideCancel(Ticket(client: ClientID(9), request: 9), now: h.now)
        case "pause": _ = h.broker.decidePause("zeta", now: h.now)
        case "record":
            h.broker.decideRecord(CompletionEvent(model: "a/b", completedAt: h.wall, latencyMilliseconds: 1, success: true),
                            now: h.now)
        case "throttle": h.broker.decideThrottle(provider: "other", tenant: "t", retryAfterMilliseconds: 5, now: h.now)
        default: _ = h.broker.decideHeartbeat(held.token, now: h.now)
        }
        #expect(h.grantedTickets().count == 1, "\(operation)")
        #expect(h.violations().isEmpty, "\(operation)")
    }

    @Test func aLateTimerStillExpiresALeaseWhoseHeartbeatCameInTime() {
        var h = Harness { $0.limits.global = 1 }
        let lease = h.grant(ttl: 1000)!
        h.broker.decideThrottle(provider: "gh", tenant: "local", retryAfterMilliseconds: 500, now: h.now)
        late(&h, by: 999)
        #expect((try? h.broker.decideHeartbeat(lease.token, now: h.now).get()) != nil, "in time")
        late(&h, by: 999)
        #expect((try? h.broker.decideHeartbeat(lease.token, now: h.now).get()) != nil, "the heartbeat reset the deadline")
        #expect(h.broker.throttles.active(now: h.now).isEmpty)
    }
}
