import Testing
@testable import TurnstileCore

/// The broker's counters and wait statistics (what `status` and `metrics` report): the wait
/// window keeps the last 1,000 grants only, and every way a lease ends lands in its counter.
@Suite("Broker metrics")
struct BrokerMetricsTests {
    @Test func waitStatisticsCoverTheLastThousandGrantsOnly() {
        var metrics = BrokerMetrics()
        for _ in 0..<1000 { metrics.recordGrant(waitedMilliseconds: 500) }
        #expect(metrics.averageWaitMilliseconds == 500 && metrics.p95WaitMilliseconds == 500)
        for _ in 0..<900 { metrics.recordGrant(waitedMilliseconds: 0) }
        #expect(metrics.averageWaitMilliseconds == 50, "100 × 500 ms left in the window of 1,000: 50 ms")
        #expect(metrics.p95WaitMilliseconds == 500, "the top 10% still waited 500 ms")
        for _ in 0..<100 { metrics.recordGrant(waitedMilliseconds: 0) }
        #expect(metrics.averageWaitMilliseconds == 0 && metrics.p95WaitMilliseconds == 0,
                "the last of the slow grants has left the window")
        for wait in 1...49 { metrics.recordGrant(waitedMilliseconds: UInt64(wait) * 10) }
        #expect(metrics.p95WaitMilliseconds == 0, "49 of 1,000 are slow: index 950 of the sorted window is 0")
        metrics.recordGrant(waitedMilliseconds: 7)
        #expect(metrics.p95WaitMilliseconds == 7, "index 950 of the sorted window now falls on the 7 ms grant")
        #expect(metrics.admittedTotal == 2050)
    }

    @Test func everyWayALeaseEndsIsCounted() {
        var h = Harness { $0.limits.global = 10 }
        let released = h.grant()!
        let expiring = h.grant(ttl: 1000, detach: true)!
        _ = h.grant(client: 7)!
        _ = h.grant(pid: 4242, client: 8)!
        let revoked = h.grant(client: 9)!
        #expect(h.acquire(wait: 0).lease != nil)
        h.release(released)
        h.advance(1001)
        h.broker.decideDisconnect(ClientID(7), now: h.now)
        h.broker.decideProcessExited(4242, now: h.now)
        _ = h.broker.decideRevoke(fence: revoked.fence, now: h.now)
        let metrics = h.broker.metrics
        #expect(metrics.admittedTotal == 6)
        #expect(metrics.releasedTotal == 1)
        #expect(metrics.expiredTotal == 1 && h.broker.lease(expiring.token) == nil)
        #expect(metrics.reclaimedTotal == 2, "one by disconnect, one by process exit")
        #expect(metrics.revokedTotal == 1)
        #expect(metrics.completedTotal == metrics.releasedTotal + metrics.expiredTotal + metrics.reclaimedTotal
                + metrics.revokedTotal)
        #expect(UInt64(h.broker.leaseCount) == metrics.admittedTotal - metrics.completedTotal)
        #expect(h.violations().isEmpty)
    }
}
