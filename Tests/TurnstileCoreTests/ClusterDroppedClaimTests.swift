import Testing
@testable import TurnstileCore

/// A claiming request can be dropped before its claim's outcome is known: its wait ends, its
/// connection closes, it is cancelled, the daemon stops. The claim keeps its reservation until
/// the outcome (protocol/CLUSTER.md §3.4), and a unit it won is given back.
@Suite("Cluster: dropped claims")
struct ClusterDroppedClaimTests {
    typealias H = SharedModelsHarness
    static let modelA = H.key("p/a")

    @Test func aClaimingRequestWhoseWaitEndsTimesOutAndAUnitWonLaterIsGivenBack() throws {
        let h = H()
        let ticket = h.ticket()
        _ = h.decide(H.request(wait: 500), ticket: ticket)
        _ = h.effects()
        #expect(h.broker.nextDeadline() == h.now.adding(milliseconds: 500))
        h.advance(500)
        let failure = try #require(H.failures(in: h.effects())[ticket])
        guard case .timeout(let refusal) = failure else { Issue.record("not a timeout: \(failure)"); return }
        #expect(refusal.reason == .cluster)
        #expect(h.broker.permitsInUse == 1 && h.broker.metrics.timedOutTotal == 1)
        #expect(h.broker.nextDeadline() == nil, "a dropped claim has no deadline")

        #expect(h.claimSucceeded(fence: 1, clusterFence: 40))
        let effects = h.effects()
        #expect(H.unclaims(in: effects) == [Unclaim(fence: 1, limits: [.model(Self.modelA)])])
        #expect(H.grants(in: effects).isEmpty && h.broker.leaseCount == 0 && h.broker.permitsInUse == 0)
        #expect(h.violations().isEmpty)
    }

    @Test func aRequestThatDoesNotWaitIsAnsweredTimeoutWhenTheClusterTakesAThirdOfTheLeaseTTL() throws {
        let h = H()
        let ticket = h.ticket()
        _ = h.decide(H.request(wait: 0), ticket: ticket)
        _ = h.effects()
        let patience = try #require(h.broker.config.cluster).leaseTTLMilliseconds / 3
        #expect(h.broker.nextDeadline() == h.now.adding(milliseconds: patience))
        h.advance(patience - 1)
        #expect(H.failures(in: h.effects()).isEmpty)
        h.advance(1)
        let failure = try #require(H.failures(in: h.effects())[ticket])
        guard case .timeout(let refusal) = failure else { Issue.record("not a timeout: \(failure)"); return }
        #expect(refusal.reason == .cluster)
        #expect(h.claimFailed(fence: 1))
        #expect(h.effects().isEmpty && h.broker.permitsInUse == 0 && h.violations().isEmpty)
    }

    @Test func aClosedConnectionDropsItsClaimingRequestsWithoutAnAnswer() {
        let h = H()
        _ = h.decide(H.request(), ticket: h.ticket(4))
        _ = h.effects()
        h.broker.decideDisconnect(ClientID(4), now: h.now)
        #expect(h.effects().isEmpty)
        #expect(h.claimFailed(fence: 1))
        #expect(h.effects().isEmpty, "nobody left to answer")
        #expect(h.broker.permitsInUse == 0 && h.violations().isEmpty)
    }

    @Test func aCancelledClaimingRequestIsAnsweredCancelled() {
        let h = H()
        let ticket = h.ticket()
        _ = h.decide(H.request(wait: 60_000), ticket: ticket)
        _ = h.effects()
        #expect(h.cancel(ticket))
        #expect(H.failures(in: h.effects())[ticket] == .cancelled)
        #expect(!h.cancel(ticket), "once")
        #expect(h.claimSucceeded(fence: 1, clusterFence: 8))
        #expect(H.unclaims(in: h.effects()).count == 1 && h.broker.leaseCount == 0)
        #expect(h.violations().isEmpty)
    }

    @Test func stoppingAnswersClaimingRequestsShuttingDown() {
        let h = H()
        let ticket = h.ticket()
        _ = h.decide(H.request(), ticket: ticket)
        _ = h.effects()
        h.broker.decideShutDown()
        #expect(H.failures(in: h.effects())[ticket] == .shuttingDown)
        #expect(h.violations().isEmpty)
    }

    @Test func aReloadKeepsTheClusterOfTheStart() {
        let h = H()
        var config = h.broker.config
        config.cluster = nil
        config.limits.global = 3
        h.broker.decideReload(config, now: h.now)
        #expect(h.broker.config.cluster?.shared.contains(.models) == true && h.broker.config.limits.global == 3)
        #expect(h.acquire(model: "p/a").isClaiming)
        #expect(h.violations().isEmpty)
    }
}
