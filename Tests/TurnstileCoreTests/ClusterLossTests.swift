import Testing
@testable import TurnstileCore

/// Losing the cluster and getting it back (protocol/CLUSTER.md §5): no new shared grant while
/// it is lost (`reason: "cluster"`, waiters keep waiting), local-only grants go on; under
/// `on_loss = "revoke"` the leases holding shared capacity are revoked at once.
@Suite("Cluster: loss and restore")
struct ClusterLossTests {
    typealias H = SharedModelsHarness
    static let modelA = H.key("p/a")

    @Test func lostUnderRevokeRevokesSharedLeasesAndRefusesNewSharedGrants() throws {
        let h = H(onLoss: .revoke)
        let shared = try #require(h.claimedGrant(clusterFence: 10))
        let local = try #require(h.grant(project: "alpha"))
        let waiter = h.ticket()
        _ = h.decide(AcquireRequest(AdmissionRequest(project: "beta", model: Self.modelA, workspace: "/w"),
                                    waitMilliseconds: 60_000), ticket: waiter)
        let secondClaim = try #require(H.claims(in: h.effects()).first)
        #expect(h.claimFailed(fence: secondClaim.fence))
        _ = h.effects()
        #expect(h.broker.isWaiting(waiter))

        let deadline = h.now.adding(milliseconds: 3_000)
        #expect(h.clusterLost(safeDeadline: deadline))
        let effects = h.effects()
        #expect(effects.first == .clusterLost(safeDeadline: deadline))
        #expect(effects.contains { if case .leaseEnded(let lease, .revoked) = $0 { lease.fence == shared.fence } else { false } })
        #expect(H.unclaims(in: effects) == [Unclaim(fence: shared.fence, limits: [.model(Self.modelA)])])
        #expect(h.broker.lease(local.token) != nil, "a local-only lease stays")
        #expect(h.broker.isWaiting(waiter), "waiters keep waiting")
        #expect(h.broker.status(now: h.now).waiting.map(\.reason) == [.cluster])

        let refused = try #require(h.acquire(model: "p/a").refusal)
        #expect(refused.reason == .cluster && refused.limit == nil)
        #expect(h.grant(project: "gamma") != nil, "local-only grants go on")
        let cluster = try #require(h.broker.status(now: h.now).cluster)
        #expect(cluster.state == .lost && cluster.metrics.lossesTotal == 1 && cluster.metrics.revokedTotal == 1)
        #expect(!h.clusterLost(safeDeadline: deadline), "lost once")
        #expect(h.violations().isEmpty)
    }

    @Test func lostUnderKeepLetsSharedLeasesRunWithoutAValidityDeadline() throws {
        let h = H(onLoss: .keep)
        let shared = try #require(h.claimedGrant(clusterFence: 10))
        #expect(h.broker.validUntil(shared) == nil, "a kept lease outlives a loss")
        #expect(h.clusterLost(safeDeadline: h.now.adding(milliseconds: 3_000)))
        let effects = h.effects()
        #expect(effects == [.clusterLost(safeDeadline: h.now.adding(milliseconds: 3_000))])
        #expect(h.broker.lease(shared.token)?.clusterFence == 10)
        #expect(h.acquire(model: "p/a").refusal?.reason == .cluster)
        #expect(h.violations().isEmpty)
    }

    @Test func restoredResumesSharedGrantsAndDispatchesWaiters() throws {
        let h = H()
        #expect(h.clusterLost(safeDeadline: h.now.adding(milliseconds: 3_000)))
        _ = h.effects()
        let waiter = h.ticket()
        #expect(h.decide(H.request(wait: 60_000), ticket: waiter).refusal?.reason == .cluster)

        h.now = h.now.adding(milliseconds: 9_000)
        #expect(h.clusterRestored(safeDeadline: h.now.adding(milliseconds: 4_000)))
        let effects = h.effects()
        #expect(effects.first == .clusterRestored)
        #expect(H.claims(in: effects).count == 1 && !h.broker.isWaiting(waiter))
        #expect(h.broker.status(now: h.now).cluster?.state == .available)
        #expect(!h.clusterRestored(safeDeadline: h.now), "restored once")
        #expect(h.violations().isEmpty)
    }

    @Test func aClaimThatSucceedsAfterTheLossIsGivenBackAndItsRequestWaitsOrIsRefused() throws {
        let h = H()
        let waits = h.ticket()
        _ = h.decide(H.request(wait: 60_000), ticket: waits)
        let doesNotWait = h.ticket()
        _ = h.decide(H.request(), ticket: doesNotWait)
        #expect(H.claims(in: h.effects()).map(\.fence) == [1, 2])
        #expect(h.clusterLost(safeDeadline: h.now.adding(milliseconds: 3_000)))
        _ = h.effects()

        #expect(h.claimSucceeded(fence: 1, clusterFence: 30))
        #expect(h.claimSucceeded(fence: 2, clusterFence: 31))
        let effects = h.effects()
        #expect(H.unclaims(in: effects).map(\.fence) == [1, 2])
        #expect(H.grants(in: effects).isEmpty && h.broker.leaseCount == 0)
        #expect(h.broker.isWaiting(waits))
        guard case .refused(let refusal)? = H.failures(in: effects)[doesNotWait] else {
            Issue.record("not refused: \(effects)")
            return
        }
        #expect(refusal.reason == .cluster)
        #expect(h.violations().isEmpty)
    }

    @Test func noSharedGrantBeforeTheHostLeaseIsRegistered() throws {
        let h = H(joined: false)
        #expect(h.broker.status(now: h.now).cluster?.state == .joining)
        #expect(h.acquire(model: "p/a").refusal?.reason == .cluster)
        let safe = h.now.adding(milliseconds: 4_000)
        #expect(h.clusterRestored(safeDeadline: safe))
        #expect(h.effects().isEmpty, "the first registration is no restoration")
        #expect(h.acquire(model: "p/a").isClaiming)
    }

    @Test func renewalsMoveTheSafeDeadlineForward() throws {
        let h = H(safeFor: 4_000)
        let lease = try #require(h.claimedGrant(clusterFence: 10))
        let later = h.now.adding(milliseconds: 6_000)
        #expect(h.clusterRenewed(safeDeadline: later))
        #expect(h.broker.validUntil(lease) == later)
        #expect(h.clusterRenewed(safeDeadline: h.now))
        #expect(h.broker.validUntil(lease) == later, "an overtaken acknowledgement changes nothing")
        _ = h.clusterLost(safeDeadline: later)
        #expect(!h.clusterRenewed(safeDeadline: later.adding(milliseconds: 1)), "only a restore brings it back")
    }
}
