import TurnstileCore

/// What the transport reports of the cluster capacity is shared with
/// (protocol/CLUSTER.md §3–§5): the outcome of each claim it sent from `outbox.claims`, units
/// it saw freed, and the host lease registered, renewed or lost. Each is handed to the broker
/// and its effects turned into output, as for a request: a claim that succeeds answers the
/// acquire or unpark it was for; a loss revokes (`on_loss = "revoke"`) and tells watchers.
extension Session {
    /// The cluster took a unit for the claim with this fence, at `clusterFence`
    /// (revision × 1024 + index in its transaction, protocol/CLUSTER.md §3.3).
    /// - Returns: false if no claim waits with that fence: the transport deletes the slot.
    @discardableResult
    public func claimSucceeded(fence: UInt64, clusterFence: UInt64) -> Bool {
        let known = take(broker.claimSucceeded(fence: fence, clusterFence: clusterFence, now: now))
        processEffects()
        return known
    }

    /// The cluster had no free unit of `full`, one of the limits of the claim with this fence:
    /// its request waits, claims another of its models, or is answered `unavailable` (`reason`
    /// `model`, `project`, `mention` or `pool`).
    /// - Returns: false if no claim waits with that fence.
    @discardableResult
    public func claimFailed(fence: UInt64, full: SharedLimit) -> Bool {
        let known = take(broker.claimFailed(fence: fence, full: full, now: now))
        processEffects()
        return known
    }

    /// The claim with this fence did not take, though the model may have a unit free: its
    /// transaction did not apply, or the read-back after an unknown outcome found no slot.
    /// Its request claims anew at once, under a new fence.
    /// - Returns: false if no claim waits with that fence.
    @discardableResult
    public func claimNotApplied(fence: UInt64) -> Bool {
        let known = take(broker.claimNotApplied(fence: fence, now: now))
        processEffects()
        return known
    }

    /// Whether a slot of this host's for `fence` belongs to a claim or a lease here; the
    /// transport deletes one that does not (a claim that committed after its read-back).
    public func ownsSharedUnit(fence: UInt64) -> Bool { broker.ownsSharedUnit(fence: fence) }

    /// The claim's transaction timed out and may have committed: the transport reads the slot
    /// back and then reports success, or that it did not apply (protocol/CLUSTER.md §3.4).
    /// - Returns: false if no claim waits with that fence.
    @discardableResult
    public func claimOutcomeUnknown(fence: UInt64) -> Bool {
        take(broker.claimOutcomeUnknown(fence: fence))
    }

    /// The transport's poll of the slots saw a unit of `limit` freed by any host: waiters a
    /// failed claim held back may claim it.
    public func sharedCapacityFreed(_ limit: SharedLimit) {
        take(broker.sharedCapacityFreed(limit, now: now))
        processEffects()
    }

    /// The host lease is registered (at start, and again after a loss): grants of shared
    /// capacity go on; the units held are surely this host's until `safeDeadline`.
    public func clusterRestored(safeDeadline: Instant) {
        take(broker.clusterRestored(safeDeadline: safeDeadline, now: now))
        processEffects()
    }

    /// A renewal of the host lease was acknowledged: the safe deadline moves on.
    public func clusterRenewed(safeDeadline: Instant) {
        take(broker.clusterRenewed(safeDeadline: safeDeadline))
    }

    /// A renewal of the host lease failed: no new grant of shared capacity; under `on_loss =
    /// "revoke"` every lease holding some is revoked now, so the transport calls this early
    /// enough for the holders to stop before `safeDeadline`.
    public func clusterLost(safeDeadline: Instant) {
        take(broker.clusterLost(safeDeadline: safeDeadline, now: now))
        processEffects()
    }

    /// `valid_until_ms` of a lease holding shared capacity: milliseconds until the safe
    /// deadline (0 once it has passed), under `on_loss = "revoke"` only.
    func validUntilMilliseconds(_ lease: Lease) -> UInt64? {
        broker.validUntil(lease).map { $0.milliseconds(since: now) }
    }
}
