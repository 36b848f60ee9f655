extension Broker {
    /// Grants every waiter that can now be granted, in the configured policy's order. Called
    /// after everything that frees capacity or lifts a block: release, expiry, disconnect,
    /// process death, park, revoke, resume, throttle or flag end, reload.
    ///
    /// A waiter blocked for its own reason (its project, workspace, model or provider) is
    /// passed over, never blocking those behind it; whole lanes and projects blocked by a
    /// shared limit are skipped without looking at their waiters. It stops as soon as the
    /// global limit is reached.
    mutating func dispatch(now: Instant) {
        guard !queue.isEmpty else { return }
        switch config.limits.fairness {
        case .roundRobin: dispatchRoundRobin(now: now)
        case .priority: dispatchPriority(now: now)
        case .proportional: dispatchProportional(now: now)
        }
    }

    /// Round robin (SPEC §4a): a cursor over modes (time, issue, mention, any), within a mode
    /// a cursor over projects in order of first arrival, FIFO within a project. Each grant
    /// moves both cursors past what it granted.
    private mutating func dispatchRoundRobin(now: Instant) {
        while globalBlock() == nil {
            var granted = false
            for step in 0..<Mode.rotation.count {
                let laneIndex = (queue.modeCursor + step) % Mode.rotation.count
                guard let (id, projectIndex, candidate) = firstGrantable(lane: laneIndex, now: now) else { continue }
                queue.modeCursor = (laneIndex + 1) % Mode.rotation.count
                queue.lanes[laneIndex].cursor = (projectIndex + 1) % queue.lanes[laneIndex].projects.count
                grantWaiter(id, candidate: candidate, now: now)
                granted = true
                break
            }
            if !granted { return }
        }
    }

    /// The first grantable waiter of a lane, walking its projects from the lane's cursor.
    private func firstGrantable(lane laneIndex: Int, now: Instant) -> (UInt64, Int, ModelCandidate?)? {
        let lane = queue.lanes[laneIndex]
        let mode = Mode.rotation[laneIndex]
        guard !lane.projects.isEmpty, modeBlock(mode) == nil, proportionalBlock(mode) == nil else { return nil }
        for step in 0..<lane.projects.count {
            let projectIndex = (lane.cursor + step) % lane.projects.count
            let project = lane.projects[projectIndex]
            if pauseBlock(project) != nil || projectBlock(project, mode: mode) != nil { continue }
            for id in lane.queues[project]! {
                if let candidate = admissible(id, now: now) { return (id, projectIndex, candidate) }
            }
        }
        return nil
    }

    /// Priority (SPEC §4a): highest effective priority first (priority plus aging), FIFO among
    /// equals. One pass suffices: a grant only uses capacity up, so nothing passed over can
    /// become grantable later in the same pass.
    private mutating func dispatchPriority(now: Instant) {
        let order = queue.waiters.values
            .map { (id: $0.id, priority: effectivePriority($0, now: now)) }
            .sorted { $0.priority > $1.priority || ($0.priority == $1.priority && $0.id < $1.id) }
        for entry in order {
            if globalBlock() != nil { return }
            if let candidate = admissible(entry.id, now: now) { grantWaiter(entry.id, candidate: candidate, now: now) }
        }
    }

    /// Proportional (SPEC §4a): waiters go in increasing `in_use / share` of their mode
    /// (exempt modes count their share as the global limit), FIFO among ties.
    private mutating func dispatchProportional(now: Instant) {
        while globalBlock() == nil {
            var best: (id: UInt64, candidate: ModelCandidate?, used: Int, share: Int)?
            for laneIndex in 0..<Mode.rotation.count {
                let mode = Mode.rotation[laneIndex]
                let lane = queue.lanes[laneIndex]
                guard !lane.projects.isEmpty, modeBlock(mode) == nil, proportionalBlock(mode) == nil else { continue }
                let ids = lane.projects.filter { pauseBlock($0) == nil && projectBlock($0, mode: mode) == nil }
                    .flatMap { lane.queues[$0]! }.sorted()
                var firstFound: (UInt64, ModelCandidate?)?
                for id in ids {
                    if let candidate = admissible(id, now: now) {
                        firstFound = (id, candidate)
                        break
                    }
                }
                guard let found = firstFound else { continue }
                let share = max(fairShare(mode).flatMap { $0 > 0 ? $0 : nil } ?? config.limits.global, 1)
                let used = occupancy.inUse(mode)
                if let current = best {
                    let lhs = used * current.share
                    let rhs = current.used * share
                    if lhs > rhs || (lhs == rhs && found.0 > current.id) { continue }
                }
                best = (found.0, found.1, used, share)
            }
            guard let best else { return }
            grantWaiter(best.id, candidate: best.candidate, now: now)
        }
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

    /// Turns a waiter into a grant and queues its answer.
    private mutating func grantWaiter(_ id: UInt64, candidate: ModelCandidate?, now: Instant) {
        let waiter = queue.remove(id)!
        let waited = now.milliseconds(since: waiter.enqueuedAt)
        switch waiter.kind {
        case .acquire(let ttl, let detach, let pid, let holder):
            let lease = grantLease(waiter.request, candidate: candidate, client: waiter.ticket.client,
                                   ttlMilliseconds: ttl, detach: detach, pid: pid, holder: holder,
                                   waitedMilliseconds: waited, now: now)
            effects.append(.granted(waiter.ticket, lease))
        case .unpark(let fence):
            let lease = takeBackCapacity(fence, candidate: candidate, waitedMilliseconds: waited, now: now)
            effects.append(.granted(waiter.ticket, lease))
        }
    }
}
