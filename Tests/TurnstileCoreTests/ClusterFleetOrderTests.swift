import Testing
@testable import TurnstileCore

/// A host's place in the fleet's line for a model (protocol/CLUSTER.md §4): the priority its
/// ticket carries is that of its best waiter that only the fleet's lack of a unit holds back.
@Suite("Cluster: the fleet's line")
struct ClusterFleetOrderTests {
    typealias H = SharedModelsHarness
    static let modelA = H.key("p/a")

    /// The best priority among this host's waiters in the fleet's line for `limit`.
    static func best(_ h: H, _ limit: SharedLimit) -> Int? {
        h.broker.fleetWaiters(for: limit, now: h.now).map(\.priority).max()
    }

    /// A waiter of p/a whose claim found the model full across the fleet (its fence: `fence`).
    static func waitForTheFleet(_ h: H, priority: Int, project: String = Names.globalProject, client: UInt64) {
        var request = H.request(project: project, wait: 60_000)
        request.admission.priority = priority
        _ = h.decide(request, ticket: h.ticket(client))
        guard let claim = H.claims(in: h.effects()).first else { return }
        _ = h.claimFailed(fence: claim.fence)
        _ = h.effects()
    }

    @Test func underPriorityTheLineCarriesTheBestWaiterHeldBackByTheFleetAlone() {
        let h = H { config in
            config.limits.fairness = .priority
            config.limits.priorityAgingMilliseconds = 0
            config.projects = [ProjectConfig(name: "capped", max: 1)]
        }
        #expect(Self.best(h, .model(Self.modelA)) == nil, "nobody waits")
        Self.waitForTheFleet(h, priority: 3, client: 1)
        #expect(Self.best(h, .model(Self.modelA)) == 3)
        Self.waitForTheFleet(h, priority: 1, client: 2)
        #expect(Self.best(h, .model(Self.modelA)) == 3, "the best of them")

        // A waiter of higher priority whose own host's project cap holds it back (the cap of 1
        // is taken by a local lease) does not raise this host's place: it could not take a unit.
        #expect(h.grant(project: "capped") != nil)
        var capped = H.request(project: "capped", wait: 60_000)
        capped.admission.priority = 9
        _ = h.decide(capped, ticket: h.ticket(3))
        _ = h.effects()
        #expect(h.broker.status(now: h.now).waiting.contains { $0.project == "capped" && $0.reason == .project })
        #expect(Self.best(h, .model(Self.modelA)) == 3)
        #expect(Self.best(h, .model(H.key("q/b"))) == nil, "q/b is not full")

        // A unit freed: the model is not full any more, so nobody queues for the fleet.
        #expect(h.sharedCapacityFreed(Self.modelA))
        _ = h.effects()
        #expect(Self.best(h, .model(Self.modelA)) == nil)
    }

    @Test func underRoundRobinEveryWaiterHeldBackByTheFleetCountsAsPriorityZero() {
        let h = H()
        Self.waitForTheFleet(h, priority: 7, client: 1)
        #expect(Self.best(h, .model(Self.modelA)) == 0)
    }

    @Test func waitersHeldBackOnlyByTheirHostsLimitsPutNoTicket() {
        let h = H { config in config.limits.global = 1 }
        Self.waitForTheFleet(h, priority: 0, client: 1)
        #expect(Self.best(h, .model(Self.modelA)) == 0)
        // The host's one global slot taken by a local lease: the waiter, admitted, would still
        // be held back by the global limit, so it does not queue for the fleet's units.
        #expect(h.grant() != nil)
        #expect(Self.best(h, .model(Self.modelA)) == nil)
    }
}
