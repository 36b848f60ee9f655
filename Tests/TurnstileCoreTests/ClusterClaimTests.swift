import Testing
@testable import TurnstileCore

/// Shared model capacity as claims (protocol/CLUSTER.md §3): a request admitted with a shared
/// model reserves its local limits and claims the unit; the claim's outcome grants it, or
/// gives the reservation back and lets it wait, claim another model, or be refused.
@Suite("Cluster: claims")
struct ClusterClaimTests {
    typealias H = SharedModelsHarness
    static let modelA = H.key("p/a")
    static let modelB = H.key("q/b")

    @Test func anAcquireOfASharedModelClaimsItsUnitAndIsGrantedWhenTheClaimSucceeds() throws {
        let h = H()
        let ticket = h.ticket()
        #expect(h.decide(H.request(workspace: "/w"), ticket: ticket).isClaiming)
        #expect(h.effects() == [.claim(ticket, ClaimRequest(fence: 1, model: Self.modelA, limit: 2))])
        #expect(h.broker.leaseCount == 0 && h.broker.permitsInUse == 1, "reserved, not granted")
        #expect(h.acquire(workspace: "/w").refusal?.reason == .workspaceLock, "the claim holds the workspace")
        #expect(h.violations().isEmpty)

        h.now = h.now.adding(milliseconds: 7)
        #expect(h.claimSucceeded(fence: 1, clusterFence: 5_120))
        let effects = h.effects()
        let grants = H.grants(in: effects)
        let lease = try #require(grants.first?.lease)
        #expect(grants.count == 1 && grants[0].ticket == ticket)
        #expect(effects.first == .leaseGranted(lease))
        #expect(lease.fence == 1 && lease.clusterFence == 5_120 && lease.model == Self.modelA)
        #expect(lease.waitedMilliseconds == 7 && lease.grantedAt == h.now)
        #expect(h.broker.lease(lease.token) == lease && h.broker.permitsInUse == 1)
        #expect(h.broker.status(now: h.now).leases.map(\.clusterFence) == [5_120])
        #expect(h.broker.validUntil(lease) == h.now.adding(milliseconds: 4_000 - 7))
        #expect(!h.claimSucceeded(fence: 1, clusterFence: 5_121),
                "resolved already: the transport deletes the slot")
        #expect(h.violations().isEmpty)
    }

    @Test func whatNeedsNoSharedModelIsGrantedAtOnceAsOnOneHost() {
        let h = H()
        let local = h.grant(project: "alpha")
        #expect(local != nil && local?.clusterFence == nil)
        #expect(H.claims(in: h.effects()).isEmpty)

        var single = Harness()
        #expect(single.broker.cluster == nil && !single.broker.claimsModels)
        let model = single.grant(model: "anthropic/claude-opus-4")
        #expect(model != nil, "no [cluster]: a model is granted at once")
    }

    @Test func aFailedClaimWaitsUntilAUnitIsFreedThenClaimsAgain() throws {
        let h = H()
        let waiting = h.ticket()
        _ = h.decide(H.request(wait: 60_000), ticket: waiting)
        _ = h.effects()
        h.now = h.now.adding(milliseconds: 5)
        #expect(h.claimFailed(fence: 1))
        #expect(h.effects().isEmpty, "no answer yet: it waits")
        #expect(h.broker.isWaiting(waiting) && h.broker.permitsInUse == 0, "the reservation is given back")
        #expect(h.broker.status(now: h.now).waiting.map(\.reason) == [.model])

        // The model counts as full across the cluster: a request that does not wait is refused.
        let refused = try #require(h.acquire(model: "p/a").refusal)
        #expect(refused.reason == .model && refused.limit == 2 && refused.inUse == 2)
        #expect(h.broker.status(now: h.now).cluster?.exhausted == [.model(Self.modelA)])
        #expect(h.violations().isEmpty)

        h.now = h.now.adding(milliseconds: 10)
        #expect(h.sharedCapacityFreed(Self.modelA))
        #expect(H.claims(in: h.effects()).map(\.fence) == [2], "claimed again with a new fence")
        #expect(!h.broker.isWaiting(waiting))
        #expect(h.claimSucceeded(fence: 2, clusterFence: 9_000))
        let grants = H.grants(in: h.effects())
        #expect(grants.map(\.ticket) == [waiting])
        #expect(grants.first?.lease.waitedMilliseconds == 15, "waited since it first arrived")
        #expect(h.violations().isEmpty)
    }

    @Test func aFailedClaimThatDoesNotWaitIsRefusedWithReasonModel() throws {
        let h = H()
        let ticket = h.ticket()
        _ = h.decide(H.request(), ticket: ticket)
        _ = h.effects()
        #expect(h.claimFailed(fence: 1))
        let failures = H.failures(in: h.effects())
        guard case .refused(let refusal)? = failures[ticket] else { Issue.record("not refused: \(failures)"); return }
        #expect(refusal.reason == .model)
        #expect(h.broker.permitsInUse == 0 && h.broker.leaseCount == 0 && h.broker.metrics.refusedTotal == 1)
        #expect(h.violations().isEmpty)
    }

    @Test func aFailedClaimTriesTheNextCandidate() throws {
        let h = H()
        _ = h.decide(H.request(fallback: ["q/b"]), ticket: h.ticket())
        #expect(H.claims(in: h.effects()).map(\.model) == [Self.modelA])
        #expect(h.claimFailed(fence: 1))
        let afterFailure = h.effects()
        #expect(H.claims(in: afterFailure) == [ClaimRequest(fence: 2, model: Self.modelB, limit: 2)])
        #expect(H.failures(in: afterFailure).isEmpty)
        #expect(h.claimSucceeded(fence: 2, clusterFence: 77))
        let lease = try #require(H.grants(in: h.effects()).first?.lease)
        #expect(lease.model == Self.modelB && lease.route == .chain && lease.clusterFence == 77)
        #expect(h.violations().isEmpty)
    }

    @Test func aClaimThatDidNotApplyIsMadeAgainUnderANewFenceAndTheModelIsNotFull() throws {
        let h = H()
        _ = h.decide(H.request(), ticket: h.ticket())
        _ = h.effects()
        #expect(h.claimNotApplied(fence: 1))
        #expect(H.claims(in: h.effects()) == [ClaimRequest(fence: 2, model: Self.modelA, limit: 2)])
        #expect(h.broker.status(now: h.now).cluster?.exhausted == [])
        #expect(!h.broker.ownsSharedUnit(fence: 1), "a late commit of the first claim is deleted")
        #expect(h.broker.ownsSharedUnit(fence: 2))
        #expect(h.claimSucceeded(fence: 2, clusterFence: 50))
        let lease = try #require(H.grants(in: h.effects()).first?.lease)
        #expect(h.broker.ownsSharedUnit(fence: lease.fence))
        #expect(h.release(lease) && !h.broker.ownsSharedUnit(fence: lease.fence))
        #expect(!h.claimNotApplied(fence: 2))
        #expect(h.violations().isEmpty)
    }

    @Test func anUnknownOutcomeKeepsTheReservationUntilTheReadBackSays() throws {
        let h = H { $0.limits.global = 1 }
        _ = h.decide(H.request(), ticket: h.ticket())
        _ = h.effects()
        #expect(h.claimOutcomeUnknown(fence: 1))
        #expect(h.effects().isEmpty)
        #expect(h.acquire(project: "other").refusal?.reason == .global, "nothing is counted twice")
        let cluster = try #require(h.broker.status(now: h.now).cluster)
        #expect(cluster.claiming == 1 && cluster.outcomeUnknown == 1 && cluster.metrics.unknownOutcomesTotal == 1)
        #expect(h.claimSucceeded(fence: 1, clusterFence: 3))
        #expect(H.grants(in: h.effects()).count == 1)
        #expect(!h.claimOutcomeUnknown(fence: 1))
        #expect(h.violations().isEmpty)
    }

    @Test func aReleaseExpiryOrWithdrawalGivesTheUnitBack() throws {
        let h = H()
        let released = try #require(h.claimedGrant(clusterFence: 10))
        #expect(h.release(released))
        #expect(H.unclaims(in: h.effects()) == [Unclaim(fence: released.fence, limits: [.model(Self.modelA)])])

        let expiring = try #require(h.claimedGrant(ttl: 1_000, clusterFence: 11))
        h.advance(1_000)
        let ended = h.effects()
        #expect(H.unclaims(in: ended) == [Unclaim(fence: expiring.fence, limits: [.model(Self.modelA)])])
        #expect(ended.contains { if case .leaseEnded(let lease, .expired) = $0 { lease.fence == expiring.fence } else { false } })

        let withdrawn = try #require(h.claimedGrant(clusterFence: 12))
        #expect(h.withdrawGrant(fence: withdrawn.fence, isNew: true))
        #expect(H.unclaims(in: h.effects()) == [Unclaim(fence: withdrawn.fence, limits: [.model(Self.modelA)])])
        #expect(h.broker.permitsInUse == 0 && h.violations().isEmpty)
    }

    @Test func aDrainingLeaseKeepsItsUnitUntilItsGroupIsGone() throws {
        let h = H()
        h.broker.processGroupAlive = { $0 == 77 }
        let lease = try #require(h.claimedGrant(clusterFence: 10))
        _ = h.broker.decideAttach(lease.token, client: ClientID(1), pgid: 77, now: h.now)
        #expect(h.release(lease))
        #expect(H.unclaims(in: h.effects()).isEmpty, "its work still runs")
        h.broker.decideProcessGroupEnded(77, now: h.now)
        #expect(H.unclaims(in: h.effects()) == [Unclaim(fence: lease.fence, limits: [.model(Self.modelA)])])
        #expect(h.violations().isEmpty)
    }

    @Test func parkingGivesTheUnitBackAndUnparkingClaimsItAgain() throws {
        let h = H()
        let lease = try #require(h.claimedGrant(clusterFence: 10))
        _ = h.broker.decidePark(lease.token, now: h.now)
        #expect(H.unclaims(in: h.effects()) == [Unclaim(fence: lease.fence, limits: [.model(Self.modelA)])])
        #expect(h.broker.lease(fence: lease.fence)?.clusterFence == nil)

        let ticket = h.ticket()
        #expect(h.unpark(lease.token, ticket: ticket) == .success(.claiming))
        #expect(h.effects() == [.claim(ticket, ClaimRequest(fence: lease.fence, model: Self.modelA, limit: 2))])
        #expect(h.unpark(lease.token, ticket: h.ticket())
            == .failure(.badRequest(field: "lease", message: "an unpark of this lease is already waiting")))
        #expect(h.broker.lease(fence: lease.fence)?.parked == true && h.violations().isEmpty)

        #expect(h.claimSucceeded(fence: lease.fence, clusterFence: 20))
        let effects = h.effects()
        let unparked = try #require(H.grants(in: effects).first)
        #expect(unparked.ticket == ticket && !unparked.lease.parked && unparked.lease.clusterFence == 20)
        #expect(effects.first == .leaseChanged(unparked.lease))
        #expect(h.violations().isEmpty)
    }

    @Test func aLeaseThatEndsWhileItsUnparkClaimsAnswersLeaseGoneAndGivesTheUnitBack() throws {
        let h = H()
        let lease = try #require(h.claimedGrant(clusterFence: 10))
        _ = h.broker.decidePark(lease.token, now: h.now)
        let ticket = h.ticket()
        _ = h.unpark(lease.token, ticket: ticket)
        _ = h.effects()
        #expect(h.release(lease))
        #expect(H.failures(in: h.effects())[ticket] == .leaseGone)
        #expect(h.broker.permitsInUse == 1, "the claim holds its reservation until its outcome")
        #expect(h.claimSucceeded(fence: lease.fence, clusterFence: 21))
        #expect(H.unclaims(in: h.effects()) == [Unclaim(fence: lease.fence, limits: [.model(Self.modelA)])])
        #expect(h.broker.permitsInUse == 0 && h.violations().isEmpty)
    }

    @Test func aLeaseWithdrawnWhileItsUnparkClaimsAnswersLeaseGoneToo() throws {
        let h = H()
        let lease = try #require(h.claimedGrant(clusterFence: 10))
        _ = h.broker.decidePark(lease.token, now: h.now)
        let ticket = h.ticket()
        _ = h.unpark(lease.token, ticket: ticket)
        _ = h.effects()
        #expect(h.withdrawGrant(fence: lease.fence, isNew: true))
        #expect(H.failures(in: h.effects())[ticket] == .leaseGone)
        #expect(h.claimFailed(fence: lease.fence))
        #expect(h.effects().isEmpty && h.broker.permitsInUse == 0 && h.violations().isEmpty)
    }
}
