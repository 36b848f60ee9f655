import TurnstileCore

/// The etcd cluster as a test describes it: the units of each shared limit held across the
/// fleet, by this host (by fence) and by the others. It answers the claims the transport sent
/// as the design's transaction would (protocol/CLUSTER.md §3.2–§3.3): one revision per batch,
/// `cluster_fence = revision × 1024 + index`, a claim failing, whole, when one of its limits
/// has no unit left.
final class FakeCluster {
    /// Units other hosts hold, per limit.
    var heldElsewhere: [SharedLimit: Int] = [:]
    /// Units this host holds, by the fence of the claim that took them.
    private(set) var heldHere: [UInt64: [SharedLimit]] = [:]
    private var revision: UInt64 = 100
    private var batchesAnswered = 0
    private var unclaimsTaken = 0

    /// Deletes the slots the loop gave back, answers every batch of claims it sent since the
    /// last call, and commits the turn those answers make.
    func settle(_ loop: EmbeddedTransport) {
        for unit in loop.unclaims.dropFirst(unclaimsTaken) { heldHere[unit.fence] = nil }
        unclaimsTaken = loop.unclaims.count
        for batch in loop.claimBatches.dropFirst(batchesAnswered) {
            revision += 1
            for (index, claim) in batch.enumerated() {
                if let full = claim.units.first(where: { inUse($0.limit) >= $0.capacity }) {
                    loop.session.claimFailed(fence: claim.fence, full: full.limit)
                } else {
                    heldHere[claim.fence] = claim.units.map(\.limit)
                    loop.session.claimSucceeded(fence: claim.fence, clusterFence: revision * 1024 + UInt64(index))
                }
            }
        }
        batchesAnswered = loop.claimBatches.count
        loop.commit()
    }

    /// Units of a limit held across the fleet.
    func inUse(_ limit: SharedLimit) -> Int {
        (heldElsewhere[limit] ?? 0) + heldHere.values.filter { $0.contains(limit) }.count
    }

    /// Units of a model pool held across the fleet.
    func inUse(_ model: ModelKey) -> Int { inUse(.model(model)) }
}
