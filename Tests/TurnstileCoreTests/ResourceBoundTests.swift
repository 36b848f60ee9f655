import Testing
@testable import TurnstileCore

/// The `[server]` bounds a connection can meet are the broker's to check, like every limit.
@Suite("Resource bounds in the core")
struct ResourceBoundTests {
    @Test func aConnectionWaitingOnItsLimitOfRequestsIsRefusedAnother() {
        var h = Harness {
            $0.limits.global = 1
            $0.server.maxPendingPerConnection = 2
        }
        _ = h.acquire(client: 9)
        #expect(h.acquire(wait: 60_000, client: 1).refusal != nil)
        #expect(h.acquire(wait: 60_000, client: 1).refusal != nil)
        guard case .overBound(.pendingPerConnection(2)) = h.acquire(wait: 60_000, client: 1) else {
            Issue.record("a third waiting request was not refused")
            return
        }
        #expect(h.acquire(wait: 0, client: 1).refusal?.reason == .global, "a request that does not wait is not bounded")
        guard case .overBound(.pendingPerConnection(2)) = h.acquire(wait: 60_000, client: 1) else {
            Issue.record("the bound no longer held after a request that did not wait")
            return
        }
        #expect(h.acquire(wait: 60_000, client: 2).refusal != nil, "another connection's waiters are its own")
    }

    @Test func attachingOneLeaseTooManyIsRefusedButReattachingOnesOwnIsNot() throws {
        var h = Harness { $0.server.maxLeasesPerConnection = 1 }
        let mine = h.grant(client: 1)
        let other = h.grant(detach: true, client: 2)
        let held = try #require(mine), detached = try #require(other)
        #expect(h.broker.decideAttach(held.token, client: ClientID(1), now: h.now) == .success(h.broker.lease(fence: held.fence)!))
        #expect(h.broker.decideAttach(detached.token, client: ClientID(1), now: h.now)
            == .failure(.overBound(.leasesPerConnection(1))))
    }
}
