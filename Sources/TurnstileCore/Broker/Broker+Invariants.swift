extension Broker {
    /// Re-derives every counter and index from the leases and waiters and reports any
    /// disagreement, plus any waiter that could be granted now (a slot must never be left
    /// free while an eligible waiter waits). Tests call it after every step; debug builds
    /// call it after every mutation while the state is small.
    /// - Returns: human descriptions of the violations; empty when all holds.
    public func invariantViolations(now: Instant) -> [String] {
        var problems: [String] = []
        var recount = Occupancy()
        for lease in leases.values {
            if lease.holdsCapacity { recount.take(lease.request, model: lease.model) }
            if let workspace = lease.request.workspace.map(ExactName.init) {
                if recount.workspaces[workspace] != nil { problems.append("workspace \(workspace) held twice") }
                recount.workspaces[workspace] = lease.fence
            }
            if tokens[lease.token] != lease.fence { problems.append("token index of fence \(lease.fence)") }
            if lease.fence > fenceHighWater { problems.append("fence \(lease.fence) above high water") }
            if let client = lease.client, leasesByClient[client]?.contains(lease.fence) != true {
                problems.append("client index of fence \(lease.fence)")
            }
            if let pid = lease.pid, leasesByPid[pid]?.contains(lease.fence) != true {
                problems.append("pid index of fence \(lease.fence)")
            }
        }
        for lease in draining.values {
            if lease.holdsCapacity { recount.take(lease.request, model: lease.model) }
            if let workspace = lease.request.workspace.map(ExactName.init) {
                if recount.workspaces[workspace] != nil { problems.append("workspace \(workspace) held twice") }
                recount.workspaces[workspace] = lease.fence
            }
            if lease.drain == nil || lease.pgid == nil || leases[lease.fence] != nil || tokens[lease.token] != nil {
                problems.append("draining fence \(lease.fence) is also live, or has no drain or group")
            }
        }
        problems += claimViolations(recount: &recount)
        // Ad-hoc limits are checked against the pools in use and the config, not recounted:
        // a lease restored without one gets it from `adoptRestoredPools`.
        problems += poolViolations(recounted: recount.namedPools)
        recount.adHocLimits = occupancy.adHocLimits
        if recount != occupancy { problems.append("occupancy drifted: counted \(recount), kept \(occupancy)") }
        if tokens.count != leases.count { problems.append("token index size") }
        if leasesByClient.values.reduce(0, { $0 + $1.count }) != leases.values.filter({ $0.client != nil }).count {
            problems.append("client index size")
        }
        if leasesByPid.values.reduce(0, { $0 + $1.count }) != leases.values.filter({ $0.pid != nil }).count {
            problems.append("pid index size")
        }
        var queued = 0
        for (laneIndex, lane) in queue.lanes.enumerated() {
            if Set(lane.projects) != Set(lane.queues.keys) { problems.append("lane \(laneIndex) project list") }
            if !lane.projects.isEmpty && lane.cursor >= lane.projects.count { problems.append("lane \(laneIndex) cursor") }
            for (project, groups) in lane.queues {
                if groups.isEmpty { problems.append("empty queue for \(project)") }
                for (demand, group) in groups {
                    if group.ids.isEmpty || group.ids != group.ids.sorted() {
                        problems.append("group of \(project) empty or out of order")
                    }
                    for id in group.ids {
                        guard let waiter = queue.waiters[id] else {
                            problems.append("queued id \(id) has no waiter")
                            continue
                        }
                        if waiter.request.mode.index != laneIndex || ExactName(waiter.request.project) != project
                            || waiter.demand != demand {
                            problems.append("waiter \(id) in the wrong queue")
                        }
                        queued += 1
                    }
                }
            }
        }
        if queued != queue.count { problems.append("queue holds \(queue.count) waiters, lanes \(queued)") }
        for waiter in queue.waiters.values {
            var owner: UInt64?
            if case .unpark(let fence) = waiter.kind {
                owner = fence
                if leases[fence]?.parked != true { problems.append("unpark waiter for a lease not parked") }
            }
            if case .admit = evaluate(waiter.request, candidates: waiter.candidates, owner: owner, now: now) {
                problems.append("waiter \(waiter.ticket) could be granted but waits")
            }
        }
        return problems
    }

    /// In debug builds, stops at the first broken invariant (only while the state is small
    /// enough for the full check to be cheap).
    func debugCheckInvariants(now: Instant) {
        #if DEBUG
        guard assertsInvariants, leases.count + queue.count <= 256 else { return }
        let problems = invariantViolations(now: now)
        assert(problems.isEmpty, "broker invariants: \(problems.joined(separator: "; "))")
        #endif
    }
}
