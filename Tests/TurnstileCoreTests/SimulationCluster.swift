@testable import TurnstileCore

/// The etcd cluster of a simulation that shares model capacity, and for some seeds project
/// caps (protocol/CLUSTER.md §3–§5): the units other hosts hold, the units this host holds by
/// fence, and the claims sent and not yet answered. It answers as etcd would (all of a claim's
/// units only while every one of its limits has one free, fleet-wide), and checks what the
/// broker believes against what it holds.
struct SimulatedCluster {
    var heldElsewhere: [SharedLimit: Int] = [:]
    var heldHere: [UInt64: [SharedLimit]] = [:]
    /// Claims sent and not answered, in the order sent.
    var pending: [ClaimRequest] = []
    var nextClusterFence: UInt64 = 1 << 20
    var problems: [String] = []

    /// Units of a limit held across the fleet.
    func inUse(_ limit: SharedLimit) -> Int {
        (heldElsewhere[limit] ?? 0) + heldHere.values.filter { $0.contains(limit) }.count
    }

    /// The limit of a claim's that has no unit left, if any.
    func full(_ claim: ClaimRequest) -> SharedLimit? {
        claim.units.first { inUse($0.limit) >= $0.capacity }?.limit
    }

    /// Takes what a step sent: claims to answer later, units given back (deleted at once).
    mutating func observe(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .claim(_, let claim): pending.append(claim)
            case .unclaim(let unit): heldHere[unit.fence] = nil
            default: break
            }
        }
    }

    /// The broker's leases against the units held here: every lease holding a unit holds it in
    /// the cluster, every unit held belongs to such a lease, and under `on_loss = "revoke"` none
    /// is held while the cluster is lost.
    func disagreements(with broker: Broker) -> [String] {
        var problems: [String] = []
        var holders: Set<UInt64> = []
        for lease in broker.leases.values where !lease.parked && lease.clusterFence == nil {
            if !broker.sharedUnits(lease.request, model: lease.model).isEmpty {
                problems.append("fence \(lease.fence) was granted shared limits without a claim")
            }
        }
        for lease in Array(broker.leases.values) + Array(broker.draining.values) where lease.clusterFence != nil {
            holders.insert(lease.fence)
            if heldHere[lease.fence] != broker.sharedUnits(lease.request, model: lease.model).map(\.limit) {
                problems.append("fence \(lease.fence) holds units the cluster does not hold")
            }
        }
        for fence in heldHere.keys where !holders.contains(fence) { problems.append("the unit of fence \(fence) leaked") }
        for fence in Array(heldHere.keys) + pending.map(\.fence) where !broker.ownsSharedUnit(fence: fence) {
            problems.append("fence \(fence) is held or claimed, and the broker says nothing owns it")
        }
        if let state = broker.cluster, state.reach == .lost, state.onLoss == .revoke, !holders.isEmpty {
            problems.append("leases hold shared units after a loss under on_loss = revoke")
        }
        return problems
    }
}

extension SimulationRun {
    /// A simulation's cluster config: every third seed shares model capacity, some of them
    /// project caps too, or project caps alone.
    static func randomCluster(seed: UInt64) -> ClusterConfig? {
        guard seed % 3 == 0 else { return nil }
        let shared: Set<ClusterConfig.SharedKind> = [[.models], [.models, .projects], [.projects]][Int(seed / 3 % 3)]
        return ClusterConfig(endpoints: ["http://127.0.0.1:2379"], shared: shared, onLoss: seed % 2 == 0 ? .revoke : .keep)
    }

    /// A limit another host may take or free a unit of, with its value here.
    mutating func randomSharedLimit() -> (limit: SharedLimit, capacity: Int)? {
        if chance(50), let project = h.broker.config.projects.randomElement(using: &rng) {
            let mention = chance(50)
            guard let cap = mention ? project.maxMention : project.max else { return nil }
            let name = ExactName(project.name)
            return (mention ? .projectMentions(name) : .project(name), cap)
        }
        let model = ModelKey(parsing: pick(Self.pools))!
        return (.model(model), h.broker.models.limit(of: model))
    }

    /// One thing the cluster or its transport reports: a claim's outcome (or that it is
    /// unknown), another host taking or freeing a unit, the host lease renewed, lost or back.
    mutating func clusterStep() {
        let roll = rng.next() % 100
        let safeDeadline = h.now.adding(milliseconds: UInt64(number(500...3000)))
        switch roll {
        case 0..<50 where !cluster!.pending.isEmpty:
            let index = Int(rng.next() % UInt64(cluster!.pending.count))
            let claim = cluster!.pending[index]
            if chance(20) {
                lastOperation = "claim \(claim.fence) outcome unknown"
                _ = h.broker.decideClaimOutcomeUnknown(fence: claim.fence)
                return
            }
            cluster!.pending.remove(at: index)
            oracle.claimResolved(claim.fence)
            if chance(10) {
                lastOperation = "claim \(claim.fence) not applied"
                _ = h.broker.decideClaimNotApplied(fence: claim.fence, now: h.now)
            } else if let full = cluster!.full(claim) {
                lastOperation = "claim \(claim.fence) failed on \(full)"
                _ = h.broker.decideClaimFailed(fence: claim.fence, full: full, now: h.now)
            } else {
                lastOperation = "claim \(claim.fence) succeeded"
                cluster!.heldHere[claim.fence] = claim.units.map(\.limit)
                cluster!.nextClusterFence += 1
                _ = h.broker.decideClaimSucceeded(fence: claim.fence, clusterFence: cluster!.nextClusterFence, now: h.now)
            }
        case 0..<65:
            guard let (limit, capacity) = randomSharedLimit() else { return }
            lastOperation = "another host takes \(limit)"
            if cluster!.inUse(limit) < capacity { cluster!.heldElsewhere[limit, default: 0] += 1 }
        case 65..<80:
            guard let (limit, _) = randomSharedLimit() else { return }
            lastOperation = "another host frees \(limit)"
            guard let held = cluster!.heldElsewhere[limit], held > 0 else { return }
            cluster!.heldElsewhere[limit] = held - 1
            _ = h.broker.decideSharedCapacityFreed(limit, now: h.now)
        case 80..<88:
            lastOperation = "host lease renewed"
            _ = h.broker.clusterRenewed(safeDeadline: safeDeadline)
        default:
            if h.broker.cluster?.reach == .available {
                lastOperation = "cluster lost"
                _ = h.broker.decideClusterLost(safeDeadline: safeDeadline, now: h.now)
            } else {
                lastOperation = "cluster restored"
                _ = h.broker.decideClusterRestored(safeDeadline: safeDeadline, now: h.now)
            }
        }
    }

    /// Answers every claim still pending (the drain: every holder is gone).
    mutating func settleClaims() {
        while let claim = cluster?.pending.first {
            cluster!.pending.removeFirst()
            oracle.claimResolved(claim.fence)
            if let full = cluster!.full(claim) {
                _ = h.broker.decideClaimFailed(fence: claim.fence, full: full, now: h.now)
            } else {
                cluster!.heldHere[claim.fence] = claim.units.map(\.limit)
                cluster!.nextClusterFence += 1
                _ = h.broker.decideClaimSucceeded(fence: claim.fence, clusterFence: cluster!.nextClusterFence, now: h.now)
            }
            take(h.effects(), config: h.broker.config)
        }
    }

    /// What a pending claim reserves, for the oracle's check (the claim effect names only its
    /// fence and units).
    var claimDimensions: (UInt64) -> (request: AdmissionRequest, model: ModelKey?)? {
        let claims = h.broker.cluster?.claims ?? [:]
        return { fence in claims[fence].map { ($0.request, $0.candidate?.key) } }
    }
}
