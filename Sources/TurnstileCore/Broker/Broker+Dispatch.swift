extension Broker {
    /// Grants every waiter that can now be granted, in the configured policy's order. Called
    /// after everything that frees capacity or lifts a block: release, expiry, disconnect,
    /// process death, park, revoke, resume, throttle or flag end, reload.
    ///
    /// A waiter blocked for its own reason (its project, workspace, model or provider) is
    /// passed over, never blocking those behind it; whole lanes and projects blocked by a
    /// shared limit are skipped without looking at their waiters. It stops as soon as the
    /// global limit is reached.
    ///
    /// Within a project and mode it checks only the oldest waiter of each demand group (see
    /// `Demand`), and a group found blocked is not checked again in the same dispatch: a
    /// dispatch only takes capacity, so nothing blocked can become grantable before it ends.
    /// A release that frees a slot none of the waiters can use thus costs one check per group,
    /// however many waiters the groups hold.
    mutating func dispatch(now: Instant) {
        guard !queue.isEmpty else { return }
        var blocked = Set<UInt64>()
        switch config.limits.fairness {
        case .roundRobin: dispatchRoundRobin(now: now, blocked: &blocked)
        case .priority: dispatchPriority(now: now, blocked: &blocked)
        case .proportional: dispatchProportional(now: now, blocked: &blocked)
        }
    }

    /// Round robin (protocol/PROTOCOL.md): a cursor over modes (time, issue, mention, any), within a mode
    /// a cursor over projects in order of first arrival, FIFO within a project. Each grant
    /// moves both cursors past what it granted.
    private mutating func dispatchRoundRobin(now: Instant, blocked: inout Set<UInt64>) {
        while globalBlock() == nil {
            var granted = false
            for step in 0..<Mode.rotation.count {
                let laneIndex = (queue.modeCursor + step) % Mode.rotation.count
                guard let (found, projectIndex) = firstGrantable(lane: laneIndex, now: now, blocked: &blocked)
                else { continue }
                queue.modeCursor = (laneIndex + 1) % Mode.rotation.count
                queue.lanes[laneIndex].cursor = (projectIndex + 1) % queue.lanes[laneIndex].projects.count
                grantWaiter(found.id, candidate: found.candidate, now: now)
                granted = true
                break
            }
            if !granted { return }
        }
    }

    /// The first grantable waiter of a lane, walking its projects from the lane's cursor.
    private mutating func firstGrantable(lane laneIndex: Int, now: Instant, blocked: inout Set<UInt64>)
        -> (Grantable, projectIndex: Int)? {
        let lane = queue.lanes[laneIndex]
        guard !lane.projects.isEmpty, laneOpen(laneIndex) else { return nil }
        for step in 0..<lane.projects.count {
            let projectIndex = (lane.cursor + step) % lane.projects.count
            let project = lane.projects[projectIndex]
            guard projectOpen(project, lane: laneIndex) else { continue }
            if let found = oldestGrantable(queue.heads(lane: laneIndex, project: project), now: now, blocked: &blocked) {
                return (found, projectIndex)
            }
        }
        return nil
    }

    /// Priority (protocol/PROTOCOL.md): highest effective priority first (priority plus aging), FIFO among
    /// equals. A group's oldest waiter is also its highest (its members share a base priority),
    /// so the best grantable waiter is the best grantable group head.
    private mutating func dispatchPriority(now: Instant, blocked: inout Set<UInt64>) {
        while globalBlock() == nil {
            var heads: [(serial: UInt64, id: UInt64, priority: Int)] = []
            for laneIndex in queue.lanes.indices where laneOpen(laneIndex) {
                for project in queue.lanes[laneIndex].projects where projectOpen(project, lane: laneIndex) {
                    for head in queue.heads(lane: laneIndex, project: project) where !blocked.contains(head.serial) {
                        heads.append((head.serial, head.id, effectivePriority(queue.waiters[head.id]!, now: now)))
                    }
                }
            }
            heads.sort { $0.priority > $1.priority || ($0.priority == $1.priority && $0.id < $1.id) }
            guard let found = firstAdmissible(heads.map { ($0.serial, $0.id) }, now: now, blocked: &blocked)
            else { return }
            grantWaiter(found.id, candidate: found.candidate, now: now)
        }
    }

    /// Proportional (protocol/PROTOCOL.md): waiters go in increasing `in_use / share` of their mode
    /// (exempt modes count their share as the global limit), FIFO among ties.
    private mutating func dispatchProportional(now: Instant, blocked: inout Set<UInt64>) {
        while globalBlock() == nil {
            var best: (found: Grantable, used: Int, share: Int)?
            for laneIndex in 0..<Mode.rotation.count {
                let mode = Mode.rotation[laneIndex]
                guard laneOpen(laneIndex) else { continue }
                let heads = queue.lanes[laneIndex].projects.filter { projectOpen($0, lane: laneIndex) }
                    .flatMap { queue.heads(lane: laneIndex, project: $0) }
                guard let found = oldestGrantable(heads, now: now, blocked: &blocked) else { continue }
                let share = max(fairShare(mode).flatMap { $0 > 0 ? $0 : nil } ?? config.limits.global, 1)
                let used = occupancy.inUse(mode)
                if let current = best {
                    // used / share against current.used / current.share, cross-multiplied at
                    // double width so that no limit can overflow the comparison.
                    let lhs = used.multipliedFullWidth(by: current.share)
                    let rhs = current.used.multipliedFullWidth(by: share)
                    if (lhs.high, lhs.low) > (rhs.high, rhs.low)
                        || ((lhs.high, lhs.low) == (rhs.high, rhs.low) && found.id > current.found.id) { continue }
                }
                best = (found, used, share)
            }
            guard let best else { return }
            grantWaiter(best.found.id, candidate: best.found.candidate, now: now)
        }
    }

    /// A waiter that passes every check now, with the model it would get (nil: none asked).
    private typealias Grantable = (id: UInt64, candidate: ModelCandidate?)

    /// Whether a lane's mode is open: under its quota and, under proportional, its share.
    private func laneOpen(_ laneIndex: Int) -> Bool {
        let mode = Mode.rotation[laneIndex]
        return modeBlock(mode) == nil && proportionalBlock(mode) == nil
    }

    /// Whether a project is open in a lane: not paused and under its caps.
    private func projectOpen(_ project: ExactName, lane laneIndex: Int) -> Bool {
        pauseBlock(project) == nil && projectBlock(project, mode: Mode.rotation[laneIndex]) == nil
    }

    /// The oldest grantable waiter among group heads.
    private mutating func oldestGrantable(_ heads: [(serial: UInt64, id: UInt64)], now: Instant,
                                 blocked: inout Set<UInt64>) -> Grantable? {
        firstAdmissible(heads.filter { !blocked.contains($0.serial) }.sorted { $0.id < $1.id }, now: now,
                        blocked: &blocked)
    }

    /// The first admissible waiter of group heads taken in the given order; marks the groups
    /// of those found blocked.
    private mutating func firstAdmissible(_ heads: [(serial: UInt64, id: UInt64)], now: Instant,
                                 blocked: inout Set<UInt64>) -> Grantable? {
        for head in heads where !blocked.contains(head.serial) {
            metrics.dispatchChecksTotal += 1
            if let candidate = admissible(head.id, now: now) { return (head.id, candidate) }
            blocked.insert(head.serial)
        }
        return nil
    }

    /// Whether a waiter passes every check now, and with which model.
    /// - Returns: nil if blocked; `.some(nil)` if admitted without a model.
    private func admissible(_ id: UInt64, now: Instant) -> ModelCandidate?? {
        guard let waiter = queue.waiters[id] else { return nil }
        var owner: UInt64?
        if case .unpark(let fence) = waiter.kind { owner = fence }
        if case .admit(let candidate) = evaluate(waiter.request, candidates: waiter.candidates, owner: owner, now: now) {
            return .some(candidate)
        }
        return nil
    }

    /// Turns a waiter into a grant and queues its answer; or, when it needs units of limits
    /// shared across hosts, into a claim (protocol/CLUSTER.md §3), answered once the claim succeeds.
    private mutating func grantWaiter(_ id: UInt64, candidate: ModelCandidate?, now: Instant) {
        let waiter = queue.remove(id)!
        if let units = unitsToClaim(waiter.request, model: candidate?.key) {
            return beginClaim(ticket: waiter.ticket, request: waiter.request, candidate: candidate, units: units,
                              kind: waiter.kind, enqueuedAt: waiter.enqueuedAt, waitDeadline: waiter.deadline, now: now)
        }
        let waited = now.milliseconds(since: waiter.enqueuedAt)
        switch waiter.kind {
        case .acquire(let ttl, let detach, let pid, let pgid, let holder):
            let lease = grantLease(waiter.request, candidate: candidate, client: waiter.ticket.client,
                                   ttlMilliseconds: ttl, detach: detach, pid: pid, pgid: pgid, holder: holder,
                                   waitedMilliseconds: waited, now: now)
            effects.append(.granted(waiter.ticket, lease))
        case .unpark(let fence):
            let lease = takeBackCapacity(fence, candidate: candidate, waitedMilliseconds: waited, now: now)
            effects.append(.granted(waiter.ticket, lease))
        }
    }
}
