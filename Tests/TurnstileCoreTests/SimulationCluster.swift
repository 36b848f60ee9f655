@testable import TurnstileCore

/// The etcd cluster of a simulation that shares model capacity (protocol/CLUSTER.md §3–§5): the
/// units other hosts hold, the units this host holds by fence, and the claims sent and not yet
/// answered. It answers as etcd would (a unit only while the model has one free, fleet-wide),
/// and checks what the broker believes against what it holds.
struct SimulatedCluster {
    var heldElsewhere: [ModelKey: Int] = [:]
    var heldHere: [UInt64: ModelKey] = [:]
    /// Claims sent and not answered, in the order sent.
    var pending: [ClaimRequest] = []
    var nextClusterFence: UInt64 = 1 << 20
    var problems: [String] = []

    /// Units of a model held across the fleet.
    func inUse(_ model: ModelKey) -> Int {
        (heldElsewhere[model] ?? 0) + heldHere.values.filter { $0 == model }.count
    }

    /// Takes what a step sent: claims to answer later, units given back (deleted at once).
    mutating func observe(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .claim(_, let claim): pending.append(claim)
            case .unclaim(let unit): heldHere[unit.fence] = nil
            case .leaseGranted(let lease) where lease.model != nil && lease.clusterFence == nil:
                problems.append("fence \(lease.fence) granted a shared model without a claim")
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
        for lease in Array(broker.leases.values) + Array(broker.draining.values) where lease.clusterFence != nil {
            holders.insert(lease.fence)
            if heldHere[lease.fence] != lease.model { problems.append("fence \(lease.fence) holds a unit the cluster does not hold") }
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
    /// A simulation's cluster config: every third seed shares model capacity.
    static func randomCluster(seed: UInt64) -> ClusterConfig? {
        guard seed % 3 == 0 else { return nil }
        return ClusterConfig(endpoints: ["http://127.0.0.1:2379"], shared: [.models], onLoss: seed % 2 == 0 ? .revoke : .keep)
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
            } else if cluster!.inUse(claim.model) < claim.limit {
                lastOperation = "claim \(claim.fence) succeeded"
                cluster!.heldHere[claim.fence] = claim.model
                cluster!.nextClusterFence += 1
                _ = h.broker.decideClaimSucceeded(fence: claim.fence, clusterFence: cluster!.nextClusterFence, now: h.now)
            } else {
                lastOperation = "claim \(claim.fence) failed"
                _ = h.broker.decideClaimFailed(fence: claim.fence, now: h.now)
            }
        case 0..<65:
            let model = ModelKey(parsing: pick(Self.pools))!
            lastOperation = "another host takes \(model)"
            if cluster!.inUse(model) < h.broker.models.limit(of: model) { cluster!.heldElsewhere[model, default: 0] += 1 }
        case 65..<80:
            let model = ModelKey(parsing: pick(Self.pools))!
            lastOperation = "another host frees \(model)"
            guard let held = cluster!.heldElsewhere[model], held > 0 else { return }
            cluster!.heldElsewhere[model] = held - 1
            _ = h.broker.decideSharedCapacityFreed(model: model, now: h.now)
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
            if cluster!.inUse(claim.model) < claim.limit {
                cluster!.heldHere[claim.fence] = claim.model
                cluster!.nextClusterFence += 1
                _ = h.broker.decideClaimSucceeded(fence: claim.fence, clusterFence: cluster!.nextClusterFence, now: h.now)
            } else {
                _ = h.broker.decideClaimFailed(fence: claim.fence, now: h.now)
            }
            take(h.effects(), config: h.broker.config)
        }
    }

    /// What a pending claim reserves, for the oracle's check (the claim effect names only its
    /// fence and model).
    var claimDimensions: (UInt64) -> AdmissionRequest? {
        let claims = h.broker.cluster?.claims ?? [:]
        return { claims[$0]?.request }
    }
}
