import Testing
@testable import TurnstileCore

/// A grant whose record could not be saved is taken back without a trace: the lease is gone,
/// its capacity is free, no `leaseEnded` is announced, and a waiter that fits takes the
/// capacity as after a release (the daemon then takes that grant back too while storage fails).
@Suite("Withdrawing unsaved grants")
struct GrantWithdrawalTests {
    @Test func aWithdrawnGrantFreesItsCapacityWithoutEndingALease() throws {
        var h = Harness { $0.limits.global = 1 }
        let granted = h.grant(workspace: "/w", pid: 4242)
        let lease = try #require(granted)
        _ = h.effects()
        let admitted = h.broker.metrics.admittedTotal
        let withdrawn = h.broker.decideWithdrawGrant(fence: lease.fence, isNew: true, now: h.now)
        #expect(withdrawn)
        let effects = h.effects()
        #expect(!effects.contains { if case .leaseEnded = $0 { true } else { false } }, "nobody learns of it")
        #expect(effects.contains(.unwatchProcess(4242)))
        #expect(h.broker.leaseCount == 0)
        #expect(h.broker.metrics.admittedTotal == admitted - 1)
        let heartbeat = h.broker.decideHeartbeat(lease.token, now: h.now)
        #expect(heartbeat == .failure(.notFound))
        let again = h.grant(workspace: "/w")
        #expect(again != nil, "global slot and workspace are free again")
        #expect(h.violations().isEmpty)
    }

    @Test func aWaiterIsDispatchedIntoTheFreedCapacity() throws {
        var h = Harness { $0.limits.global = 1 }
        let granted = h.grant()
        let first = try #require(granted)
        _ = h.acquire(wait: 10_000, client: 2)
        _ = h.effects()
        let withdrawn = h.broker.decideWithdrawGrant(fence: first.fence, isNew: true, now: h.now)
        #expect(withdrawn)
        let dispatched = h.grantedTickets()
        #expect(dispatched.count == 1, "a slot is never left free while a waiter fits")
        #expect(h.violations().isEmpty)
    }

    @Test func aWithdrawnUnparkParksTheLeaseAgain() throws {
        var h = Harness { $0.limits.global = 1 }
        let granted = h.grant()
        let lease = try #require(granted)
        _ = h.broker.decidePark(lease.token, now: h.now)
        _ = h.broker.decideUnpark(lease.token, ticket: h.ticket(), waitMilliseconds: 0, now: h.now)
        _ = h.effects()
        let withdrawn = h.broker.decideWithdrawGrant(fence: lease.fence, isNew: false, now: h.now)
        #expect(withdrawn)
        let changed = h.effects().compactMap { if case .leaseChanged(let lease) = $0 { lease } else { nil } }
        #expect(changed.map(\.parked) == [true])
        let other = h.grant(client: 2)
        #expect(other != nil, "its capacity is free again")
        #expect(h.violations().isEmpty)
    }
}
