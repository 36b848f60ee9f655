extension Broker {
    /// Serves every deadline that has come: leases past their deadline expire (their
    /// connection gets `expired`), throttles and subscription-limit flags end, waiters are
    /// granted into what that freed, and only then do waits past their `wait_ms` time out
    /// (claiming requests' too: their claims stay until their outcome is known).
    /// The daemon calls it from its one timer, armed at `nextDeadline()`.
    public mutating func tick(now: Instant) -> Transition<Void> {
        decideTick(now: now)
        return Transition(reply: (), effects: takeEffects())
    }

    /// `tick`'s decision; its effects stay in the outbox.
    mutating func decideTick(now: Instant) {
        defer { debugCheckInvariants(now: now) }
        var freed = false
        while let top = leaseDeadlines.min, top.at <= now {
            leaseDeadlines.popMin()
            guard let lease = leases[top.id] else { continue }
            if lease.deadline > now {
                leaseDeadlines.push(lease.deadline, top.id)
            } else {
                endLease(top.id, cause: .expired, now: now)
                freed = true
            }
        }
        if endBlocks(now: now) { freed = true }
        if freed { dispatch(now: now) }
        while let top = queue.deadlines.min, top.at <= now {
            queue.deadlines.popMin()
            guard let waiter = queue.waiters[top.id] else { continue }
            var owner: UInt64?
            if case .unpark(let fence) = waiter.kind { owner = fence }
            let verdict = evaluate(waiter.request, candidates: waiter.candidates, owner: owner, now: now)
            let refusal: Refusal
            if case .block(let blocked) = verdict { refusal = blocked } else {
                refusal = Refusal(.global, detail: "wait ended")
            }
            queue.remove(top.id)
            metrics.timedOutTotal += 1
            effects.append(.failed(waiter.ticket, .timeout(refusal)))
        }
        if claimsShared { timeOutClaims(now: now) }
    }

    /// The earliest instant at which `tick` has work: a lease deadline, a wait deadline (a
    /// claiming request's too), a throttle or flag end. Stale heap tops (leases since released or heartbeated, waiters
    /// since granted) are cleaned off first, so the daemon's timer rarely wakes for nothing.
    public mutating func nextDeadline() -> Instant? {
        while let top = leaseDeadlines.min {
            guard let lease = leases[top.id] else { leaseDeadlines.popMin(); continue }
            if lease.deadline > top.at {
                leaseDeadlines.popMin()
                leaseDeadlines.push(lease.deadline, top.id)
                continue
            }
            break
        }
        while let top = queue.deadlines.min, queue.waiters[top.id] == nil { queue.deadlines.popMin() }
        let candidates: [Instant?] = [leaseDeadlines.min?.at, queue.deadlines.min?.at, throttles.earliestEnd,
                                      modelFlags.earliestEnd, claimsShared ? nextClaimDeadline : nil]
        return candidates.compactMap { $0 }.min()
    }

    /// Brings the blocks that end by the clock up to `now`: throttles and subscription-limit
    /// flags that have ended are lifted and the waiters they held are granted, before the
    /// caller does anything else. Every entry point that takes `now` calls it first, so a
    /// request that arrives after a block ended, but before the daemon's timer fired, never
    /// takes a permit ahead of a waiter that was held by that block. Lease and wait deadlines
    /// are left to `tick` (a heartbeat that arrived in time is never lost to them).
    mutating func liftEndedBlocks(now: Instant) {
        if endBlocks(now: now) { dispatch(now: now) }
    }

    /// Ends the throttles and flags due by `now`.
    /// - Returns: whether any ended. O(1) when none is due.
    private mutating func endBlocks(now: Instant) -> Bool {
        var ended = false
        if let end = throttles.earliestEnd, end <= now, throttles.expire(now: now) { ended = true }
        if let end = modelFlags.earliestEnd, end <= now, modelFlags.expire(now: now) { ended = true }
        return ended
    }
}
