/// Shared capacity as claims (protocol/CLUSTER.md §3). When `[cluster]` shares `models`,
/// `projects` or `pools`, a request admitted that needs a unit of a shared limit
/// (`sharedUnits`) reserves every local limit as any grant does, then waits in a claim while
/// the transport takes one unit of each of those limits from etcd, all at once; the outcome,
/// reported by the claim's fence, grants it, or gives the reservation back and lets it wait or
/// be refused. Units held are given back (`Effect.unclaim`) whenever their lease gives its
/// capacity back.
extension Broker {
    /// The cluster took a unit for a claim: its request is granted, with `clusterFence` on the
    /// lease (protocol/CLUSTER.md §3.3). A claim whose request was dropped meanwhile, or that
    /// succeeded after the cluster was lost, gives its unit back instead: no new shared grant
    /// while the cluster is lost.
    /// - Returns: false if no claim waits with that fence (already resolved): the transport
    ///   deletes the slot it took.
    public mutating func claimSucceeded(fence: UInt64, clusterFence: UInt64, now: Instant) -> Transition<Bool> {
        let reply = decideClaimSucceeded(fence: fence, clusterFence: clusterFence, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `claimSucceeded`'s decision; its effects stay in the outbox.
    mutating func decideClaimSucceeded(fence: UInt64, clusterFence: UInt64, now: Instant) -> Bool {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard let claim = cluster?.claims.removeValue(forKey: fence) else { return false }
        guard !claim.abandoned, cluster?.isAvailable == true else {
            releaseSharedUnits(Unclaim(fence: fence, limits: claim.units.map(\.limit)))
            endClaim(claim, now: now)
            return true
        }
        let waited = now.milliseconds(since: claim.enqueuedAt)
        switch claim.purpose {
        case .acquire(var lease):
            lease.clusterFence = clusterFence
            lease.grantedAt = now
            lease.lastHeartbeatAt = now
            lease.deadline = now.adding(milliseconds: lease.ttlMilliseconds)
            lease.waitedMilliseconds = waited
            insert(lease, reserved: true)
            metrics.recordGrant(waitedMilliseconds: waited)
            effects.append(.leaseGranted(lease))
            effects.append(.granted(claim.ticket, lease))
        case .unpark:
            var lease = leases[fence]!
            lease.parked = false
            lease.request = claim.request
            lease.model = claim.candidate?.key
            lease.route = claim.candidate?.route
            lease.waitedMilliseconds = waited
            lease.clusterFence = clusterFence
            leases[fence] = lease
            effects.append(.leaseChanged(lease))
            effects.append(.granted(claim.ticket, lease))
        }
        return true
    }

    /// The cluster had no free unit of `full`, one of a claim's limits (protocol/CLUSTER.md
    /// §3.3). The reservation is given back and the limit counts as full until a unit of it is
    /// given back here or the transport sees one freed (`sharedCapacityFreed`); the request is
    /// considered again: it claims another of its model candidates if one is free, else it
    /// waits, or is refused (`reason` `model`, `project`, `mention` or `pool`) if it does not wait.
    /// - Returns: false if no claim waits with that fence.
    public mutating func claimFailed(fence: UInt64, full: SharedLimit, now: Instant) -> Transition<Bool> {
        let reply = decideClaimFailed(fence: fence, full: full, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `claimFailed`'s decision; its effects stay in the outbox.
    mutating func decideClaimFailed(fence: UInt64, full: SharedLimit, now: Instant) -> Bool {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard let claim = cluster?.claims.removeValue(forKey: fence) else { return false }
        cluster!.metrics.claimFailuresTotal += 1
        cluster!.exhausted.insert(full)
        endClaim(claim, now: now)
        return true
    }

    /// A claim did not take, for another reason than a full model: its transaction did not
    /// apply, or its outcome was unknown and the read-back found no slot. The reservation is
    /// given back and the request considered again at once, so it claims anew under a new
    /// fence (a late commit of this one is then a slot no grant owns: see `ownsSharedUnit`).
    /// - Returns: false if no claim waits with that fence.
    public mutating func claimNotApplied(fence: UInt64, now: Instant) -> Transition<Bool> {
        let reply = decideClaimNotApplied(fence: fence, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `claimNotApplied`'s decision; its effects stay in the outbox.
    mutating func decideClaimNotApplied(fence: UInt64, now: Instant) -> Bool {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard let claim = cluster?.claims.removeValue(forKey: fence) else { return false }
        endClaim(claim, now: now)
        return true
    }

    /// Whether a slot of this host's written for `fence` belongs to something here: a claim
    /// still waiting for its outcome, or a lease (live or draining) holding its unit. The
    /// transport deletes a slot of its host that nothing owns: a claim that committed after
    /// its read-back found nothing (protocol/CLUSTER.md §3.4: a frozen member can commit a
    /// request late).
    public func ownsSharedUnit(fence: UInt64) -> Bool {
        if cluster?.claims[fence] != nil { return true }
        return (leases[fence] ?? draining[fence])?.clusterFence != nil
    }

    /// The units leases here hold, as claims to make again: after a new host lease (the old
    /// one expired with its slots), leases kept through the loss (`on_loss = "keep"`) claim
    /// their units again (protocol/CLUSTER.md §5). A parked lease holds none.
    public var heldSharedUnits: [ClaimRequest] {
        (Array(leases.values) + Array(draining.values))
            .filter { $0.clusterFence != nil && !$0.parked }
            .map { ClaimRequest(fence: $0.fence, units: sharedUnits($0.request, model: $0.model)) }
            .filter { !$0.units.isEmpty }
            .sorted { $0.fence < $1.fence }
    }

    /// A claim's transaction timed out: it may have committed (protocol/CLUSTER.md §3.4). The
    /// reservation stays until the transport, having read the slot back, reports success or
    /// failure, so nothing is counted twice.
    /// - Returns: false if no claim waits with that fence.
    public mutating func claimOutcomeUnknown(fence: UInt64) -> Transition<Bool> {
        let reply = decideClaimOutcomeUnknown(fence: fence)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `claimOutcomeUnknown`'s decision.
    mutating func decideClaimOutcomeUnknown(fence: UInt64) -> Bool {
        guard let claim = cluster?.claims[fence] else { return false }
        if !claim.outcomeUnknown {
            cluster!.claims[fence]!.outcomeUnknown = true
            cluster!.metrics.unknownOutcomesTotal += 1
        }
        return true
    }

    /// The transport saw a unit of a shared limit freed in the cluster (its poll of the
    /// slots): a limit a claim found full may be claimed again, and its waiters are dispatched.
    /// - Returns: whether the limit counted as full.
    public mutating func sharedCapacityFreed(_ limit: SharedLimit, now: Instant) -> Transition<Bool> {
        let reply = decideSharedCapacityFreed(limit, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `sharedCapacityFreed`'s decision; its effects stay in the outbox.
    mutating func decideSharedCapacityFreed(_ limit: SharedLimit, now: Instant) -> Bool {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard cluster?.exhausted.remove(limit) != nil else { return false }
        dispatch(now: now)
        return true
    }

    /// How long a request that does not wait (`wait_ms` 0) waits for its claim's outcome before
    /// it is answered `timeout` (reason `cluster`): a third of the host lease's ttl, the longest
    /// a claim's transaction runs before it fails, so such a request is answered promptly even
    /// while the cluster cannot be reached.
    var claimPatienceMilliseconds: UInt64 { (config.cluster?.leaseTTLMilliseconds ?? 0) / 3 }

    /// Reserves every local limit of a request admitted that needs `units` of limits shared
    /// across hosts, and emits their claim instead of granting (protocol/CLUSTER.md §3.1). An
    /// acquire's lease is made now (its fence is the claim's), but enters the tables only when
    /// granted.
    mutating func beginClaim(ticket: Ticket, request: AdmissionRequest, candidate: ModelCandidate?, units: [SharedUnit],
                             kind: Waiter.Kind, enqueuedAt: Instant, waitDeadline: Instant?, now: Instant) {
        let fence: UInt64
        let purpose: Claim.Purpose
        var reserved = request.namesPools ? withPoolLimitsInForce(request) : request
        switch kind {
        case .acquire(let ttl, let detach, let pid, let pgid, let holder):
            let lease = newLease(reserved, candidate: candidate, client: ticket.client, ttlMilliseconds: ttl,
                                 detach: detach, pid: pid, pgid: pgid, holder: holder, waitedMilliseconds: 0, now: now)
            fence = lease.fence
            purpose = .acquire(lease)
            reserved = lease.request
            if let workspace = reserved.workspace { occupancy.workspaces[ExactName(workspace)] = fence }
        case .unpark(let parked):
            fence = parked
            purpose = .unpark
        }
        occupancy.take(reserved, model: candidate?.key)
        cluster!.claims[fence] = Claim(ticket: ticket, fence: fence, purpose: purpose, request: reserved,
                                       candidate: candidate, units: units, enqueuedAt: enqueuedAt, waitDeadline: waitDeadline,
                                       answerDeadline: waitDeadline ?? now.adding(milliseconds: claimPatienceMilliseconds))
        cluster!.metrics.claimsTotal += 1
        effects.append(.claim(ticket, ClaimRequest(fence: fence, units: units)))
    }

    /// Gives back the shared units a lease holds (it has a `clusterFence`).
    mutating func releaseSharedUnits(of lease: Lease) {
        releaseSharedUnits(Unclaim(fence: lease.fence, limits: sharedUnits(lease.request, model: lease.model).map(\.limit)))
    }

    /// Gives shared units back to the cluster. Their limits are no longer full: this host is
    /// giving a unit of each back, which a waiter here may take next.
    mutating func releaseSharedUnits(_ unclaim: Unclaim) {
        effects.append(.unclaim(unclaim))
        guard cluster?.exhausted.isEmpty == false else { return }
        for limit in unclaim.limits { cluster!.exhausted.remove(limit) }
    }

    /// A claim that did not end in a grant: its reservation is given back, its request (unless
    /// dropped) considered again, and waiters dispatched into what it freed.
    private mutating func endClaim(_ claim: Claim, now: Instant) {
        occupancy.give(claim.request, model: claim.candidate?.key)
        if case .acquire = claim.purpose, let workspace = claim.request.workspace.map(ExactName.init),
           occupancy.workspaces[workspace] == claim.fence {
            occupancy.workspaces[workspace] = nil
        }
        if !claim.abandoned { reconsider(claim, now: now) }
        dispatch(now: now)
    }

    /// A claim's request, first in line, checked again: it claims what is now free (a
    /// fallback, when its model is full across the cluster), else it waits with the arrival
    /// and deadline it had, or is answered with what blocks it (`wait_ms` 0, or its wait over).
    private mutating func reconsider(_ claim: Claim, now: Instant) {
        let candidates = candidates(for: claim.request)
        switch evaluate(claim.request, candidates: candidates, owner: claim.owner, now: now) {
        case .admit(let candidate):
            if let units = unitsToClaim(claim.request, model: candidate?.key) {
                return beginClaim(ticket: claim.ticket, request: claim.request, candidate: candidate, units: units,
                                  kind: claim.waiterKind, enqueuedAt: claim.enqueuedAt, waitDeadline: claim.waitDeadline, now: now)
            }
            // Needing no shared unit now, it waits first in line and the dispatch that follows grants it.
            _ = queue.enqueue(ticket: claim.ticket, request: claim.request, candidates: candidates, kind: claim.waiterKind,
                              since: claim.enqueuedAt, deadline: claim.waitDeadline ?? now)
        case .block(let refusal):
            guard let deadline = claim.waitDeadline else {
                metrics.refusedTotal += 1
                return effects.append(.failed(claim.ticket, .refused(refusal)))
            }
            guard deadline > now else {
                metrics.timedOutTotal += 1
                return effects.append(.failed(claim.ticket, .timeout(refusal)))
            }
            _ = queue.enqueue(ticket: claim.ticket, request: claim.request, candidates: candidates, kind: claim.waiterKind,
                              since: claim.enqueuedAt, deadline: deadline)
        }
    }
}
