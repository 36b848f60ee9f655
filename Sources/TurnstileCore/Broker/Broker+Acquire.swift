extension Broker {
    /// Asks for a permit (protocol/PROTOCOL.md §8.2): granted now, refused now (`wait_ms` 0, nothing
    /// consumed), or queued until granted, timed out, cancelled, or its connection closes.
    /// - Parameters:
    ///   - request: a validated request.
    ///   - ticket: names this request in a later `Effect.granted` / `.failed`.
    ///   - now: the current instant.
    public mutating func acquire(_ request: AcquireRequest, ticket: Ticket, now: Instant) -> Transition<AcquireOutcome> {
        let reply = decideAcquire(request, ticket: ticket, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `acquire`'s decision; its effects stay in the outbox.
    mutating func decideAcquire(_ request: AcquireRequest, ticket: Ticket, now: Instant) -> AcquireOutcome {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        let bounds = config.server
        if request.waitMilliseconds > 0 && queue.pendingCount(of: ticket.client) >= bounds.maxPendingPerConnection {
            return .overBound(.pendingPerConnection(bounds.maxPendingPerConnection))
        }
        if !request.detach && leaseCount(of: ticket.client) >= bounds.maxLeasesPerConnection {
            return .overBound(.leasesPerConnection(bounds.maxLeasesPerConnection))
        }
        if request.waitMilliseconds > 0 && queue.count >= bounds.maxWaiters {
            return .overBound(.waiters(bounds.maxWaiters))
        }
        guard request.admission.namesPools else { return admit(request, request.admission, ticket: ticket, now: now) }
        if case .badRequest(let field, let message)? = poolProblem(request.admission) {
            return .invalid(field: field, message: message)
        }
        return admit(request, withPoolLimitsInForce(request.admission), ticket: ticket, now: now)
    }

    /// An acquire's admission check and its grant, refusal or wait, on `admission` (the
    /// request's, with its pools' limits in force). The usual request naming no pool is passed
    /// as it came, not copied.
    private mutating func admit(_ request: AcquireRequest, _ admission: AdmissionRequest, ticket: Ticket,
                                now: Instant) -> AcquireOutcome {
        let candidates = candidates(for: admission)
        let ttl = request.ttlMilliseconds ?? config.limits.defaultTTLMilliseconds
        switch evaluate(admission, candidates: candidates, now: now) {
        case .admit(let candidate):
            if let units = unitsToClaim(admission, model: candidate?.key) {
                let kind = Waiter.Kind.acquire(ttlMilliseconds: ttl, detach: request.detach, pid: request.pid,
                                               pgid: request.pgid, holder: request.holder)
                beginClaim(ticket: ticket, request: admission, candidate: candidate, units: units, kind: kind, enqueuedAt: now,
                           waitDeadline: request.waitMilliseconds > 0 ? now.adding(milliseconds: request.waitMilliseconds) : nil,
                           now: now)
                return .claiming
            }
            let lease = grantLease(admission, candidate: candidate, client: ticket.client,
                                   ttlMilliseconds: ttl, detach: request.detach, pid: request.pid,
                                   pgid: request.pgid, holder: request.holder, waitedMilliseconds: 0, now: now)
            effects.append(.granted(ticket, lease))
            return .granted(lease)
        case .block(let refusal):
            if request.waitMilliseconds == 0 {
                metrics.refusedTotal += 1
                return .refused(refusal)
            }
            let kind = Waiter.Kind.acquire(ttlMilliseconds: ttl, detach: request.detach, pid: request.pid,
                                           pgid: request.pgid, holder: request.holder)
            let waiter = queue.enqueue(ticket: ticket, request: admission, candidates: candidates, kind: kind,
                                       now: now, waitMilliseconds: request.waitMilliseconds)
            return .queued(position: position(of: waiter, now: now), refusal)
        }
    }

    /// Gives a parked lease its capacity back, waiting like an acquire (protocol/PROTOCOL.md §8.19).
    /// The lease keeps its token and fence; it may get a different model than before. A lease
    /// that is not parked answers at once as granted.
    public mutating func unpark(_ token: LeaseToken, ticket: Ticket, waitMilliseconds: UInt64,
                                now: Instant) -> Transition<Result<AcquireOutcome, LeaseError>> {
        let reply = decideUnpark(token, ticket: ticket, waitMilliseconds: waitMilliseconds, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `unpark`'s decision; its effects stay in the outbox.
    mutating func decideUnpark(_ token: LeaseToken, ticket: Ticket, waitMilliseconds: UInt64,
                                now: Instant) -> Result<AcquireOutcome, LeaseError> {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        if waitMilliseconds > 0 && queue.pendingCount(of: ticket.client) >= config.server.maxPendingPerConnection {
            return .success(.overBound(.pendingPerConnection(config.server.maxPendingPerConnection)))
        }
        guard let fence = liveFence(token, now: now), let lease = leases[fence] else { return .failure(.notFound) }
        guard lease.parked else {
            effects.append(.granted(ticket, lease))
            return .success(.granted(lease))
        }
        if queue.unparkWaiter(of: fence) != nil || cluster?.claims[fence] != nil {
            return .failure(.badRequest(field: "lease", message: "an unpark of this lease is already waiting"))
        }
        // A parked lease holds no unit: it asks again under the limits in force, and a pool
        // that has lost its limit meanwhile (a config change across a restart) cannot be had.
        let request = withPoolLimitsInForce(lease.request)
        if !request.pools.isEmpty, let problem = poolProblem(request) { return .failure(problem) }
        let candidates = candidates(for: request)
        switch evaluate(request, candidates: candidates, owner: fence, now: now) {
        case .admit(let candidate):
            if let units = unitsToClaim(request, model: candidate?.key) {
                beginClaim(ticket: ticket, request: request, candidate: candidate, units: units, kind: .unpark(fence: fence),
                           enqueuedAt: now, waitDeadline: waitMilliseconds > 0 ? now.adding(milliseconds: waitMilliseconds) : nil,
                           now: now)
                return .success(.claiming)
            }
            let lease = takeBackCapacity(fence, candidate: candidate, waitedMilliseconds: 0, now: now)
            effects.append(.granted(ticket, lease))
            return .success(.granted(lease))
        case .block(let refusal):
            if waitMilliseconds == 0 { return .success(.refused(refusal)) }
            let waiter = queue.enqueue(ticket: ticket, request: request, candidates: candidates,
                                       kind: .unpark(fence: fence), now: now, waitMilliseconds: waitMilliseconds)
            return .success(.queued(position: position(of: waiter, now: now), refusal))
        }
    }

    /// Creates a lease and reserves everything it holds.
    mutating func grantLease(_ request: AdmissionRequest, candidate: ModelCandidate?, client: ClientID,
                             ttlMilliseconds: UInt64, detach: Bool, pid: Int32?, pgid: Int32?, holder: String?,
                             waitedMilliseconds: UInt64, now: Instant) -> Lease {
        let lease = newLease(request, candidate: candidate, client: client, ttlMilliseconds: ttlMilliseconds,
                             detach: detach, pid: pid, pgid: pgid, holder: holder, waitedMilliseconds: waitedMilliseconds,
                             now: now)
        insert(lease)
        metrics.recordGrant(waitedMilliseconds: waitedMilliseconds)
        effects.append(.leaseGranted(lease))
        return lease
    }

    /// A lease with the next fence and a new token, in no table yet.
    mutating func newLease(_ request: AdmissionRequest, candidate: ModelCandidate?, client: ClientID,
                           ttlMilliseconds: UInt64, detach: Bool, pid: Int32?, pgid: Int32?, holder: String?,
                           waitedMilliseconds: UInt64, now: Instant) -> Lease {
        let request = request.namesPools ? withPoolLimitsInForce(request) : request
        fenceHighWater += 1
        return Lease(
            token: LeaseToken(high: random.next(), low: random.next()), fence: fenceHighWater, request: request,
            model: candidate?.key, route: candidate?.route, holder: holder, pid: pid, pgid: pgid,
            ttlMilliseconds: ttlMilliseconds, grantedAt: now, lastHeartbeatAt: now,
            deadline: now.adding(milliseconds: ttlMilliseconds), client: client, bound: !detach, parked: false,
            waitedMilliseconds: waitedMilliseconds)
    }

    /// Adds a lease to every index and counts what it holds.
    /// - Parameter reserved: its capacity and workspace are counted already (a claim's
    ///   reservation handed over to the lease it granted).
    mutating func insert(_ lease: Lease, reserved: Bool = false) {
        leases[lease.fence] = lease
        tokens[lease.token] = lease.fence
        if lease.holdsCapacity && !reserved { occupancy.take(lease.request, model: lease.model) }
        if let workspace = lease.request.workspace { occupancy.workspaces[ExactName(workspace)] = lease.fence }
        if let client = lease.client { leasesByClient[client, default: []].insert(lease.fence) }
        if let pid = lease.pid { bindProcess(pid, fence: lease.fence) }
        leaseDeadlines.push(lease.deadline, lease.fence)
        compactHeapsIfNeeded()
    }

    /// Re-reserves capacity for a parked lease (an unpark succeeding).
    mutating func takeBackCapacity(_ fence: UInt64, candidate: ModelCandidate?, waitedMilliseconds: UInt64,
                                   now: Instant) -> Lease {
        var lease = leases[fence]!
        lease.parked = false
        lease.model = candidate?.key
        lease.route = candidate?.route
        lease.waitedMilliseconds = waitedMilliseconds
        lease.request = withPoolLimitsInForce(lease.request)
        occupancy.take(lease.request, model: lease.model)
        leases[fence] = lease
        effects.append(.leaseChanged(lease))
        return lease
    }

    /// Starts watching a process for a lease, announcing the first lease on it.
    mutating func bindProcess(_ pid: Int32, fence: UInt64) {
        if leasesByPid[pid] == nil { effects.append(.watchProcess(pid)) }
        leasesByPid[pid, default: []].insert(fence)
    }

    /// Stops watching a process for a lease, announcing when no lease is left on it.
    mutating func unbindProcess(_ pid: Int32, fence: UInt64) {
        leasesByPid[pid]?.remove(fence)
        if leasesByPid[pid]?.isEmpty == true {
            leasesByPid[pid] = nil
            effects.append(.unwatchProcess(pid))
        }
    }

    /// A waiter's place in line, counting from 1: its rank in the policy's order (priority:
    /// effective priority, then arrival; otherwise arrival).
    func position(of waiter: Waiter, now: Instant) -> Int {
        guard config.limits.fairness == .priority else {
            return 1 + queue.waiters.values.reduce(0) { $0 + ($1.id < waiter.id ? 1 : 0) }
        }
        let mine = effectivePriority(waiter, now: now)
        return 1 + queue.waiters.values.reduce(0) { count, other in
            let theirs = effectivePriority(other, now: now)
            return count + (theirs > mine || (theirs == mine && other.id < waiter.id) ? 1 : 0)
        }
    }

    /// Every waiter's place in line at once (one sort, for status).
    func positions(now: Instant) -> [UInt64: Int] {
        var order = queue.waiters.values.map { (id: $0.id, priority: effectivePriority($0, now: now)) }
        if config.limits.fairness == .priority {
            order.sort { $0.priority > $1.priority || ($0.priority == $1.priority && $0.id < $1.id) }
        } else {
            order.sort { $0.id < $1.id }
        }
        var positions: [UInt64: Int] = [:]
        for (rank, entry) in order.enumerated() { positions[entry.id] = rank + 1 }
        return positions
    }

    /// A waiter's priority plus one per `priority_aging_ms` waited, so that a low priority is
    /// not starved forever.
    func effectivePriority(_ waiter: Waiter, now: Instant) -> Int {
        effectivePriority(waiter.request.priority, waitingSince: waiter.enqueuedAt, now: now)
    }

    func effectivePriority(_ priority: Int, waitingSince enqueuedAt: Instant, now: Instant) -> Int {
        let step = config.limits.priorityAgingMilliseconds
        guard step > 0 else { return priority }
        let bonus = Int(clamping: now.milliseconds(since: enqueuedAt) / step)
        let (sum, overflow) = priority.addingReportingOverflow(bonus)
        return overflow ? Int.max : sum
    }

    /// Stale entries in the deadline heaps are dropped lazily; rebuild a heap when they come
    /// to outnumber the live ones, so memory follows what is live, not what was ever granted.
    mutating func compactHeapsIfNeeded() {
        if leaseDeadlines.count > 2 * leases.count + 1024 {
            let live = leases
            leaseDeadlines.rebuild { live[$0]?.deadline }
        }
        if queue.deadlines.count > 2 * queue.count + 1024 {
            let live = queue.waiters
            queue.deadlines.rebuild { live[$0]?.deadline }
        }
    }
}
