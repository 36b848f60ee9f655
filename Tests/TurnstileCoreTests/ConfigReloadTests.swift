import Testing
@testable import TurnstileCore

/// Reloading a config: live leases are kept, future grants follow the new limits.
@Suite("Config reload")
struct ConfigReloadTests {
    @Test func reloadKeepsLiveLeasesAndAppliesToFutureGrants() {
        var h = Harness { $0.limits.global = 3 }
        let leases = (0..<3).compactMap { _ in h.grant() }
        #expect(leases.count == 3)
        h.broker.decideReload({ var c = h.broker.config; c.limits.global = 1; return c }(), now: h.now)
        #expect(h.broker.leaseCount == 3, "no live lease is revoked by a reload")
        #expect(h.acquire().refusal?.reason == .global)
        h.release(leases[0])
        h.release(leases[1])
        #expect(h.acquire().refusal?.reason == .global, "still at the lowered limit of 1")
        h.release(leases[2])
        #expect(h.grant() != nil)
    }

    @Test func reloadWakesWaitersThatNowFit() {
        var h = Harness { $0.limits.global = 1 }
        _ = h.grant()
        #expect(h.acquire(wait: 60_000).isQueued)
        h.broker.decideReload({ var c = h.broker.config; c.limits.global = 2; return c }(), now: h.now)
        #expect(h.grantedTickets().count == 1)
    }
}
