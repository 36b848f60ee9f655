import Testing
@testable import TurnstileCore

/// Project caps and configured pools shared across hosts (protocol/CLUSTER.md §2, §3): a grant
/// claims one unit of each shared limit it needs (model, project cap, mention cap, pools) in one
/// claim, all or none; the limit the cluster found full blocks with its own reason.
@Suite("Cluster: shared project caps and pools")
struct ClusterSharedCapsTests {
    typealias H = SharedModelsHarness
    static let modelA = H.key("p/a")
    static let web = SharedLimit.project(ExactName("web"))
    static let gpu = SharedLimit.pool(ExactName("gpu"))

    /// A broker sharing `shared`, with project `web` capped at 2 (1 mention) and pool `gpu` of 1.
    static func harness(_ shared: Set<ClusterConfig.SharedKind>) -> H {
        H(shared: shared) { config in
            config.projects = [ProjectConfig(name: "web", max: 2, maxMention: 1)]
            config.pools = [PoolConfig(name: "gpu", limit: 1)]
        }
    }

    static func request(project: String = "web", mode: Mode = .any, model: String? = nil, pools: [String] = [],
                        poolLimits: [String: Int] = [:], wait: UInt64 = 0) -> AcquireRequest {
        AcquireRequest(AdmissionRequest(project: project, mode: mode, model: model.map(H.key), pools: pools, poolLimits: poolLimits),
                       waitMilliseconds: wait)
    }

    @Test func aGrantClaimsOneUnitOfEveryLimitItNeedsInOneClaim() throws {
        let h = Self.harness([.models, .projects, .pools])
        let ticket = h.ticket()
        #expect(h.decide(Self.request(mode: .mention, model: "p/a", pools: ["gpu", "scratch"], poolLimits: ["scratch": 4]),
                         ticket: ticket).isClaiming)
        let claim = try #require(H.claims(in: h.effects()).first)
        #expect(claim.units == [SharedUnit(.model(Self.modelA), capacity: 2), SharedUnit(Self.web, capacity: 2),
                                SharedUnit(.projectMentions(ExactName("web")), capacity: 1), SharedUnit(Self.gpu, capacity: 1)],
                "the ad-hoc pool scratch stays this host's")
        #expect(h.claimSucceeded(fence: claim.fence, clusterFence: 2_048))
        let lease = try #require(H.grants(in: h.effects()).first?.lease)
        #expect(lease.clusterFence == 2_048)

        #expect(h.release(lease))
        #expect(H.unclaims(in: h.effects()) == [Unclaim(fence: lease.fence, limits: claim.units.map(\.limit))])
        #expect(h.violations().isEmpty)
    }

    @Test func withoutAModelAGrantClaimsItsProjectCapAlone() throws {
        let h = Self.harness([.projects])
        #expect(h.decide(Self.request(model: "p/a"), ticket: h.ticket()).isClaiming)
        #expect(H.claims(in: h.effects()).first?.units == [SharedUnit(Self.web, capacity: 2)], "models are not shared")
        #expect(h.decide(Self.request(project: "elsewhere"), ticket: h.ticket(2)).lease != nil, "an uncapped project claims nothing")
        #expect(h.decide(Self.request(pools: ["gpu"]), ticket: h.ticket(3)).isClaiming)
        #expect(H.claims(in: h.effects()).first?.units == [SharedUnit(Self.web, capacity: 2)], "pools are not shared")
        #expect(h.violations().isEmpty)
    }

    @Test func aProjectFullAcrossTheClusterBlocksWithReasonProjectUntilAUnitIsFreed() throws {
        let h = Self.harness([.projects])
        let first = h.ticket(1)
        #expect(h.decide(Self.request(), ticket: first).isClaiming)
        let claim = try #require(H.claims(in: h.effects()).first)
        #expect(h.claimFailed(fence: claim.fence, full: Self.web))
        let failure = try #require(H.failures(in: h.effects())[first])
        guard case .refused(let refusal) = failure else { Issue.record("expected a refusal, got \(failure)"); return }
        #expect(refusal.reason == .project && refusal.limit == 2 && refusal.inUse == 2)
        #expect(refusal.detail.contains("across the cluster"))
        #expect(h.broker.status(now: h.now).cluster?.exhausted == [Self.web])
        #expect(h.broker.permitsInUse == 0, "the reservation was given back")

        // A waiter queues behind the full project; the fleet's line sees it.
        let waiter = h.ticket(2)
        let queued = h.decide(Self.request(wait: 60_000), ticket: waiter)
        #expect(queued.refusal?.reason == .project)
        #expect(h.broker.fleetWaiters(for: Self.web, now: h.now) == [FleetWaiter(ticket: waiter, priority: 0)])
        #expect(h.broker.fleetWaiters(for: Self.gpu, now: h.now).isEmpty)
        #expect(h.decide(Self.request(project: "other"), ticket: h.ticket(3)).lease != nil, "other projects go on")
        _ = h.effects()

        #expect(h.sharedCapacityFreed(Self.web))
        let again = try #require(H.claims(in: h.effects()).first)
        #expect(again.units == [SharedUnit(Self.web, capacity: 2)] && again.fence != claim.fence)
        #expect(h.broker.isClaiming(waiter) && h.broker.claimWaiter(fence: again.fence, now: h.now)?.ticket == waiter)
        #expect(h.violations().isEmpty)
    }

    @Test func aMentionCapOrAPoolFullAcrossTheClusterBlocksWithItsOwnReason() throws {
        let h = Self.harness([.projects, .pools])
        #expect(h.decide(Self.request(mode: .mention), ticket: h.ticket(1)).isClaiming)
        let mention = try #require(H.claims(in: h.effects()).first)
        #expect(h.claimFailed(fence: mention.fence, full: .projectMentions(ExactName("web"))))
        _ = h.effects()
        #expect(h.decide(Self.request(mode: .mention), ticket: h.ticket(2)).refusal?.reason == .mention)
        #expect(h.decide(Self.request(mode: .issue), ticket: h.ticket(3)).isClaiming, "other modes take the project's cap only")
        _ = h.effects()

        #expect(h.decide(Self.request(project: "other", pools: ["gpu"]), ticket: h.ticket(4)).isClaiming)
        let pool = try #require(H.claims(in: h.effects()).first)
        #expect(pool.units == [SharedUnit(Self.gpu, capacity: 1)])
        #expect(h.claimFailed(fence: pool.fence, full: Self.gpu))
        _ = h.effects()
        let refused = try #require(h.decide(Self.request(project: "other", pools: ["gpu"]), ticket: h.ticket(5)).refusal)
        #expect(refused.reason == .pool && refused.limit == 1 && refused.detail.contains("across the cluster"))
        #expect(h.violations().isEmpty)
    }

    @Test func withTheClusterUnreachableAClaimOfAProjectCapIsReasonCluster() {
        let h = Self.harness([.projects])
        #expect(h.clusterLost(safeDeadline: h.now.adding(milliseconds: 1_000)))
        _ = h.effects()
        #expect(h.decide(Self.request(), ticket: h.ticket(1)).refusal?.reason == .cluster)
        #expect(h.decide(Self.request(project: "other"), ticket: h.ticket(2)).lease != nil, "local-only grants go on")
        #expect(h.violations().isEmpty)
    }

    @Test func parkingGivesEveryUnitBackAndUnparkingClaimsThemAgain() throws {
        let h = Self.harness([.projects, .pools])
        #expect(h.decide(Self.request(pools: ["gpu"]), ticket: h.ticket(1)).isClaiming)
        let claim = try #require(H.claims(in: h.effects()).first)
        #expect(h.claimSucceeded(fence: claim.fence, clusterFence: 1_024))
        let lease = try #require(H.grants(in: h.effects()).first?.lease)

        _ = h.broker.decidePark(lease.token, now: h.now)
        #expect(H.unclaims(in: h.effects()) == [Unclaim(fence: lease.fence, limits: [Self.web, Self.gpu])])
        #expect(h.unpark(lease.token, ticket: h.ticket(1)) == .success(.claiming))
        #expect(H.claims(in: h.effects()).first == ClaimRequest(fence: lease.fence, units: claim.units))
        #expect(h.violations().isEmpty)
    }

    @Test func keptLeasesClaimEveryUnitTheyHoldAgain() throws {
        let h = H(onLoss: .keep, shared: [.models, .projects]) { config in
            config.projects = [ProjectConfig(name: "web", max: 2)]
        }
        #expect(h.decide(Self.request(model: "p/a"), ticket: h.ticket(1)).isClaiming)
        let claim = try #require(H.claims(in: h.effects()).first)
        #expect(h.claimSucceeded(fence: claim.fence, clusterFence: 1_024))
        #expect(h.broker.heldSharedUnits == [ClaimRequest(fence: claim.fence, units: claim.units)])
        #expect(claim.units.map(\.limit) == [.model(Self.modelA), Self.web])
    }
}
