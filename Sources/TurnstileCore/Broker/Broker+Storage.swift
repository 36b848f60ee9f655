extension Broker {
    /// Takes back a grant whose record could not be saved (PROTOCOL.md, "State and storage"):
    /// the daemon answers its acquire `unavailable` with reason `storage` instead, so nobody
    /// ever learns of the lease. A new lease is removed from every index without counting as
    /// granted or ended; an unparked lease is parked again. Waiters are dispatched into the
    /// freed capacity as after any release (a slot is never left free while a waiter fits);
    /// while the state directory cannot be written those grants are taken back in turn, so
    /// each such waiter is answered `storage` too.
    /// - Parameters:
    ///   - fence: the lease whose grant is taken back.
    ///   - isNew: whether the grant created the lease (else it was an unpark).
    /// - Returns: false if no live lease has the fence.
    public mutating func withdrawGrant(fence: UInt64, isNew: Bool, now: Instant) -> Transition<Bool> {
        let reply = decideWithdrawGrant(fence: fence, isNew: isNew, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `withdrawGrant`'s decision; its effects stay in the outbox.
    @discardableResult
    mutating func decideWithdrawGrant(fence: UInt64, isNew: Bool, now: Instant) -> Bool {
        defer { debugCheckInvariants(now: now) }
        guard let lease = leases[fence] else { return false }
        guard isNew else {
            guard !lease.parked else { return true }
            parkCapacity(fence)
            dispatch(now: now)
            return true
        }
        removeFromIndexes(fence)
        if metrics.admittedTotal > 0 { metrics.admittedTotal -= 1 }
        dispatch(now: now)
        return true
    }
}
