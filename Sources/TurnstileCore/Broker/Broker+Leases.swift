extension Broker {
    /// Extends a lease: its deadline becomes now + ttl.
    /// - Parameters:
    ///   - sentBy: the latest instant the heartbeat can have been sent, when the caller knows it
    ///     is earlier than `now` (the daemon read it only after a busy loop turn): a lease whose
    ///     deadline had not passed by then is still alive. Nil means `now`.
    /// - Returns: the lease, or `notFound` if no live lease has the token (one whose deadline
    ///   has passed is expired here and now, even if the timer has not fired yet).
    public mutating func heartbeat(_ token: LeaseToken, now: Instant, sentBy: Instant? = nil) -> Transition<Result<Lease, LeaseError>> {
        let reply = decideHeartbeat(token, now: now, sentBy: sentBy)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `heartbeat`'s decision; its effects stay in the outbox.
    mutating func decideHeartbeat(_ token: LeaseToken, now: Instant, sentBy: Instant? = nil) -> Result<Lease, LeaseError> {
        liftEndedBlocks(now: now)
        guard let fence = liveFence(token, now: now, sentBy: sentBy) else { return .failure(.notFound) }
        leases[fence]!.deadline = now.adding(milliseconds: leases[fence]!.ttlMilliseconds)
        leases[fence]!.lastHeartbeatAt = now
        return .success(leases[fence]!)
    }

    /// Releases a lease and grants whoever can now be granted.
    /// - Parameters:
    ///   - exit: how the holder's work finished, when it says (`exit_code`/`signal`).
    /// - Returns: the lease as it ended (its `grantedAt` gives `held_ms`; `drain` is set if its
    ///   process group still runs and keeps the slot).
    public mutating func release(_ token: LeaseToken, exit: ExitStatus? = nil, now: Instant) -> Transition<Result<Lease, LeaseError>> {
        let reply = decideRelease(token, exit: exit, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `release`'s decision; its effects stay in the outbox.
    mutating func decideRelease(_ token: LeaseToken, exit: ExitStatus? = nil, now: Instant) -> Result<Lease, LeaseError> {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard let fence = liveFence(token, now: now) else { return .failure(.notFound) }
        if let exit {
            metrics.recordFinish(exit)
            leases[fence]!.exit = exit
        }
        let lease = endLease(fence, cause: .released, now: now)
        dispatch(now: now)
        return .success(lease)
    }

    /// Binds a lease to a connection (closing it then releases the lease) and, optionally, to
    /// a process. Also counts as a heartbeat: the holder is evidently alive.
    /// - Parameters:
    ///   - pid: a process whose exit releases the lease (replacing any earlier one).
    ///   - pgid: a process group whose live members keep the slot after the lease ends
    ///     (replacing any earlier one).
    public mutating func attach(_ token: LeaseToken, client: ClientID, pid: Int32? = nil, pgid: Int32? = nil,
                                now: Instant) -> Transition<Result<Lease, LeaseError>> {
        let reply = decideAttach(token, client: client, pid: pid, pgid: pgid, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `attach`'s decision; its effects stay in the outbox.
    mutating func decideAttach(_ token: LeaseToken, client: ClientID, pid: Int32? = nil, pgid: Int32? = nil,
                                now: Instant) -> Result<Lease, LeaseError> {
        liftEndedBlocks(now: now)
        guard let fence = liveFence(token, now: now) else { return .failure(.notFound) }
        var lease = leases[fence]!
        // A lease this connection already holds is counted already (`turnstile run` attaches
        // COMMAND's group to the lease it acquired on the same connection).
        let limit = config.server.maxLeasesPerConnection
        if lease.client != client && leaseCount(of: client) >= limit { return .failure(.overBound(.leasesPerConnection(limit))) }
        if let old = lease.client, old != client {
            leasesByClient[old]?.remove(fence)
            if leasesByClient[old]?.isEmpty == true { leasesByClient[old] = nil }
        }
        lease.client = client
        lease.bound = true
        leasesByClient[client, default: []].insert(fence)
        if let pid, pid != lease.pid {
            if let old = lease.pid { unbindProcess(old, fence: fence) }
            lease.pid = pid
            bindProcess(pid, fence: fence)
        }
        if let pgid { lease.pgid = pgid }
        lease.deadline = now.adding(milliseconds: lease.ttlMilliseconds)
        lease.lastHeartbeatAt = now
        leases[fence] = lease
        effects.append(.leaseChanged(lease))
        return .success(lease)
    }

    /// Parks a lease: frees its capacity in every dimension but keeps its workspace lock (a run
    /// paused for a human). Waiters that fit in the freed capacity are granted.
    public mutating func park(_ token: LeaseToken, now: Instant) -> Transition<Result<Lease, LeaseError>> {
        let reply = decidePark(token, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `park`'s decision; its effects stay in the outbox.
    mutating func decidePark(_ token: LeaseToken, now: Instant) -> Result<Lease, LeaseError> {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard let fence = liveFence(token, now: now) else { return .failure(.notFound) }
        guard !leases[fence]!.parked else { return .success(leases[fence]!) }
        let lease = parkCapacity(fence)
        dispatch(now: now)
        return .success(lease)
    }

    /// Parks a live lease: its capacity and its shared unit are given back, its workspace lock
    /// stays. Callers dispatch.
    @discardableResult
    mutating func parkCapacity(_ fence: UInt64) -> Lease {
        var lease = leases[fence]!
        lease.parked = true
        occupancy.give(lease.request, model: lease.model)
        if lease.clusterFence != nil {
            releaseSharedUnits(of: lease)
            lease.clusterFence = nil
        }
        leases[fence] = lease
        effects.append(.leaseChanged(lease))
        return lease
    }

    /// Takes a lease away (an administrator's `revoke`); its connection gets a `revoked` event.
    public mutating func revoke(_ token: LeaseToken, now: Instant) -> Transition<Result<Lease, LeaseError>> {
        let reply = decideRevoke(token, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `revoke`'s decision; its effects stay in the outbox.
    mutating func decideRevoke(_ token: LeaseToken, now: Instant) -> Result<Lease, LeaseError> {
        liftEndedBlocks(now: now)
        guard let fence = liveFence(token, now: now) else { return .failure(.notFound) }
        return .success(decideRevoke(fence: fence, now: now)!)
    }

    /// Takes the lease with this fence away.
    /// - Returns: nil if no live lease has it.
    public mutating func revoke(fence: UInt64, now: Instant) -> Transition<Lease?> {
        let reply = decideRevoke(fence: fence, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `revoke`'s decision; its effects stay in the outbox.
    @discardableResult
    mutating func decideRevoke(fence: UInt64, now: Instant) -> Lease? {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard leases[fence] != nil else { return nil }
        let lease = endLease(fence, cause: .revoked, now: now)
        dispatch(now: now)
        return lease
    }

    /// The fence of a live lease, expiring it on the spot if its deadline has passed (so an
    /// answer never depends on whether the timer happened to fire first).
    mutating func liveFence(_ token: LeaseToken, now: Instant, sentBy: Instant? = nil) -> UInt64? {
        guard let fence = tokens[token], let lease = leases[fence] else { return nil }
        if lease.deadline <= min(now, sentBy ?? now) {
            endLease(fence, cause: .expired, now: now)
            dispatch(now: now)
            return nil
        }
        return fence
    }

    /// Ends a lease: removes it from every index and gives back everything it held; or, if
    /// its process group still runs, makes it draining: its token and bindings go, its slot
    /// stays until `processGroupEnded`. Callers dispatch.
    @discardableResult
    mutating func endLease(_ fence: UInt64, cause: LeaseEndCause, now: Instant) -> Lease {
        // Taken out of the table first: reading `pgid` through the subscript would copy the
        // whole lease.
        let lease = leases.removeValue(forKey: fence)!
        let drains = lease.pgid.map { processGroupAlive($0) } ?? false
        unindex(lease, keepingSlot: drains)
        if let waiter = queue.unparkWaiter(of: fence) {
            let ticket = queue.remove(waiter)!.ticket
            effects.append(.failed(ticket, .leaseGone))
        }
        metrics.recordEnd(cause)
        guard drains else {
            effects.append(.leaseEnded(lease, cause))
            return lease
        }
        var drainingLease = lease
        drainingLease.drain = Lease.Drain(cause: cause, since: now)
        effects.append(.leaseDraining(drainingLease))
        drainingLease.client = nil
        draining[fence] = drainingLease
        return drainingLease
    }

    /// A process group has no live process left: the leases draining on it give their slots
    /// back, and waiters that fit are granted.
    public mutating func processGroupEnded(_ pgid: Int32, now: Instant) -> Transition<Void> {
        decideProcessGroupEnded(pgid, now: now)
        return Transition(reply: (), effects: takeEffects())
    }

    /// `processGroupEnded`'s decision; its effects stay in the outbox.
    mutating func decideProcessGroupEnded(_ pgid: Int32, now: Instant) {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        let fences = draining.values.filter { $0.pgid == pgid }.map(\.fence).sorted()
        guard !fences.isEmpty else { return }
        for fence in fences {
            let lease = draining.removeValue(forKey: fence)!
            giveBackSlot(lease)
            metrics.drainedTotal += 1
            effects.append(.leaseEnded(lease, .drained))
        }
        dispatch(now: now)
    }
}

extension Broker {
    /// Removes a live lease from every index and gives back the capacity and workspace it
    /// holds: what ending a lease and withdrawing an unsaved grant share.
    /// - Returns: the lease as it was.
    @discardableResult
    mutating func removeFromIndexes(_ fence: UInt64) -> Lease {
        let lease = leases.removeValue(forKey: fence)!
        unindex(lease, keepingSlot: false)
        return lease
    }

    /// Drops a lease already taken out of `leases` from the other indexes; an unpark claiming a
    /// shared unit for it (the only claim a live lease's fence can have) is answered `leaseGone`.
    /// - Parameter keepingSlot: keep its capacity and workspace (a lease starting to drain).
    private mutating func unindex(_ lease: Lease, keepingSlot: Bool) {
        if claimsShared { dropUnparkClaim(of: lease.fence) }
        tokens[lease.token] = nil
        if !keepingSlot { giveBackSlot(lease) }
        // A connection's (possibly empty) set stays until it disconnects: the next grant to it
        // then needs no new allocation.
        if let client = lease.client { leasesByClient[client]?.remove(lease.fence) }
        if let pid = lease.pid { unbindProcess(pid, fence: lease.fence) }
    }

    /// Gives back the capacity, the shared unit and the workspace lock a lease holds.
    private mutating func giveBackSlot(_ lease: Lease) {
        if lease.holdsCapacity { occupancy.give(lease.request, model: lease.model) }
        if lease.clusterFence != nil { releaseSharedUnits(of: lease) }
        if let workspace = lease.request.workspace.map(ExactName.init), occupancy.workspaces[workspace] == lease.fence {
            occupancy.workspaces[workspace] = nil
        }
    }

    /// A connection closed: its waiters and claiming requests are dropped (nobody is left to
    /// answer), its bound leases released at once, and its detached leases keep living on
    /// heartbeats alone.
    public mutating func disconnect(_ client: ClientID, now: Instant) -> Transition<Void> {
        decideDisconnect(client, now: now)
        return Transition(reply: (), effects: takeEffects())
    }

    /// `disconnect`'s decision; its effects stay in the outbox.
    mutating func decideDisconnect(_ client: ClientID, now: Instant) {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        for id in queue.ids(of: client) { queue.remove(id) }
        if claimsShared { dropClaims(answering: nil) { $0.ticket.client == client } }
        for fence in (leasesByClient[client] ?? []).sorted() {
            if leases[fence]!.bound {
                endLease(fence, cause: .disconnected, now: now)
            } else {
                leases[fence]!.client = nil
            }
        }
        leasesByClient[client] = nil
        dispatch(now: now)
    }

    /// A process exited: every lease bound to it is released at once.
    public mutating func processExited(_ pid: Int32, now: Instant) -> Transition<Void> {
        decideProcessExited(pid, now: now)
        return Transition(reply: (), effects: takeEffects())
    }

    /// `processExited`'s decision; its effects stay in the outbox.
    mutating func decideProcessExited(_ pid: Int32, now: Instant) {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        for fence in (leasesByPid[pid] ?? []).sorted() {
            endLease(fence, cause: .processExited, now: now)
        }
        dispatch(now: now)
    }

    /// Cancels a waiting or claiming request of a connection; it is answered `cancelled`.
    /// - Returns: false if the ticket is neither waiting nor claiming.
    public mutating func cancel(_ ticket: Ticket, now: Instant) -> Transition<Bool> {
        let reply = decideCancel(ticket, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `cancel`'s decision; its effects stay in the outbox.
    mutating func decideCancel(_ ticket: Ticket, now: Instant) -> Bool {
        liftEndedBlocks(now: now)
        guard let id = queue.id(of: ticket) else {
            return claimsShared && dropClaims(answering: .cancelled) { $0.ticket == ticket }
        }
        queue.remove(id)
        effects.append(.failed(ticket, .cancelled))
        return true
    }

    /// The daemon is stopping: every waiter and claiming request is answered `shutting_down`.
    /// Leases stay, to be saved and restored.
    public mutating func shutDown() -> Transition<Void> {
        decideShutDown()
        return Transition(reply: (), effects: takeEffects())
    }

    /// `shutDown`'s decision; its effects stay in the outbox.
    mutating func decideShutDown() {
        for waiter in queue.inArrivalOrder() {
            queue.remove(waiter.id)
            effects.append(.failed(waiter.ticket, .shuttingDown))
        }
        dropClaims(answering: .shuttingDown) { _ in true }
    }
}
