/// Reaching the cluster, losing it and getting it back (protocol/CLUSTER.md §5), and what the
/// claims in flight mean for the rest of the broker: requests dropped while they claim, waits
/// that end, the invariants and `status`.
extension Broker {
    /// The host lease is registered, at start or again after a loss: shared grants may go on,
    /// and the units held are surely this host's until `safeDeadline`. Models found full before
    /// count as free again (a new host lease starts from the cluster as it is), and waiters are
    /// dispatched.
    /// - Returns: false if the cluster was reachable already, or no model is shared.
    public mutating func clusterRestored(safeDeadline: Instant, now: Instant) -> Transition<Bool> {
        let reply = decideClusterRestored(safeDeadline: safeDeadline, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `clusterRestored`'s decision; its effects stay in the outbox.
    mutating func decideClusterRestored(safeDeadline: Instant, now: Instant) -> Bool {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard let reach = cluster?.reach, reach != .available else { return false }
        cluster!.reach = .available
        cluster!.since = now
        cluster!.safeDeadline = safeDeadline
        cluster!.exhausted.removeAll()
        if reach == .lost { effects.append(.clusterRestored) }
        dispatch(now: now)
        return true
    }

    /// A renewal of the host lease was acknowledged: the units held are surely this host's
    /// until `safeDeadline` (the send time of that renewal + the granted ttl − a margin). A
    /// deadline earlier than the one known (an acknowledgement overtaken) changes nothing.
    /// - Returns: false if the cluster is not reachable (only `clusterRestored` makes it so).
    public mutating func clusterRenewed(safeDeadline: Instant) -> Transition<Bool> {
        guard cluster?.isAvailable == true else { return Transition(reply: false, effects: takeEffects()) }
        cluster!.safeDeadline = max(cluster!.safeDeadline ?? safeDeadline, safeDeadline)
        return Transition(reply: true, effects: takeEffects())
    }

    /// A renewal of the host lease failed (protocol/CLUSTER.md §5): no new shared grant
    /// (`reason: "cluster"`; waiters keep waiting), local-only grants go on. With `on_loss =
    /// "revoke"` every lease holding shared capacity is revoked at once, its holder told: the
    /// transport reports the loss early enough that this happens before `safeDeadline`.
    /// - Returns: false if the cluster was lost already, or no model is shared.
    public mutating func clusterLost(safeDeadline: Instant, now: Instant) -> Transition<Bool> {
        let reply = decideClusterLost(safeDeadline: safeDeadline, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `clusterLost`'s decision; its effects stay in the outbox.
    mutating func decideClusterLost(safeDeadline: Instant, now: Instant) -> Bool {
        defer { debugCheckInvariants(now: now) }
        liftEndedBlocks(now: now)
        guard let reach = cluster?.reach, reach != .lost else { return false }
        cluster!.reach = .lost
        cluster!.since = now
        cluster!.safeDeadline = safeDeadline
        cluster!.metrics.lossesTotal += 1
        effects.append(.clusterLost(safeDeadline: safeDeadline))
        if cluster!.onLoss == .revoke {
            for fence in leases.keys.sorted() where leases[fence]!.clusterFence != nil {
                endLease(fence, cause: .revoked, now: now)
                cluster!.metrics.revokedTotal += 1
            }
        }
        dispatch(now: now)
        return true
    }

    /// This host's waiters in the fleet's line for `limit` (protocol/CLUSTER.md §4): those that
    /// only the fleet's lack of units holds back, which would be admitted here with a unit of
    /// `limit` if the fleet had units free, each with its effective priority (under `fairness =
    /// "priority"`, aging included; 0 under the other policies). Waiters blocked by this host's
    /// own limits (a local project cap, the global limit, a pause…) do not queue for the
    /// fleet's units, so they hold up no other host. Empty unless a claim found `limit` full.
    public func fleetWaiters(for limit: SharedLimit, now: Instant) -> [FleetWaiter] {
        guard let cluster, cluster.exhausted.contains(limit) else { return [] }
        var unlimited = self
        unlimited.cluster!.exhausted.removeAll()
        var line: [FleetWaiter] = []
        for waiter in queue.waiters.values where Self.mayNeed(waiter, limit) {
            guard case .admit(let candidate) = unlimited.evaluate(waiter.request, candidates: waiter.candidates,
                                                                   owner: waiter.demand.owner, now: now),
                  sharedUnits(waiter.request, model: candidate?.key).contains(where: { $0.limit == limit })
            else { continue }
            let priority = config.limits.fairness == .priority ? effectivePriority(waiter, now: now) : 0
            line.append(FleetWaiter(ticket: waiter.ticket, priority: priority))
        }
        return line
    }

    /// The place in the fleet's line of the request a claim is for, as `fleetWaiters` counts
    /// it: its ticket and priority, for the transport to queue it when the claim finds a limit
    /// full, before the request is back among the waiters. Nil if no claim waits with that
    /// fence, or it is for no request (a re-claim).
    public func claimWaiter(fence: UInt64, now: Instant) -> FleetWaiter? {
        guard let claim = cluster?.claims[fence], !claim.abandoned else { return nil }
        let priority = config.limits.fairness == .priority
            ? effectivePriority(claim.request.priority, waitingSince: claim.enqueuedAt, now: now) : 0
        return FleetWaiter(ticket: claim.ticket, priority: priority)
    }

    /// Whether the request with `ticket` waits for a claim's outcome.
    public func isClaiming(_ ticket: Ticket) -> Bool {
        cluster?.claims.values.contains { $0.ticket == ticket && !$0.abandoned } ?? false
    }

    /// Whether a waiter could need a unit of `limit` (the cheap test before the admission check).
    private static func mayNeed(_ waiter: Waiter, _ limit: SharedLimit) -> Bool {
        switch limit {
        case .model(let model): waiter.candidates.contains { $0.key == model }
        case .project(let project): ExactName(waiter.request.project) == project
        case .projectMentions(let project): waiter.request.mode == .mention && ExactName(waiter.request.project) == project
        case .pool(let pool): waiter.request.pools.contains { ExactName($0) == pool }
        }
    }

    /// Whether shared units can be claimed now.
    var isClusterAvailable: Bool { cluster?.isAvailable == true }

    /// Until when a lease's shared unit is surely its own, for its `valid_until_ms`
    /// (protocol/CLUSTER.md §5): the safe deadline, for a lease holding shared capacity under
    /// `on_loss = "revoke"`; nil otherwise (a lease under `keep` outlives a loss).
    public func validUntil(_ lease: Lease) -> Instant? {
        guard lease.clusterFence != nil, cluster?.onLoss == .revoke else { return nil }
        return cluster?.safeDeadline
    }

    /// By when a draining lease's process group must be gone: the safe deadline, once the
    /// cluster is lost under `on_loss = "revoke"` and the lease held a shared unit (past it
    /// another host may be given the unit); nil otherwise (`kill_grace_ms` alone applies).
    public func groupKillDeadline(_ lease: Lease) -> Instant? {
        guard let cluster, cluster.reach != .available, cluster.onLoss == .revoke, lease.clusterFence != nil else { return nil }
        return cluster.safeDeadline
    }

    /// The draining leases that held a shared unit, with the deadline their groups must be
    /// gone by (`groupKillDeadline`), for the transport to hasten their SIGKILL on a loss.
    public var drainingGroupsKilledBy: [(pgid: Int32, killBy: Instant)] {
        draining.values.compactMap { lease in
            guard let pgid = lease.pgid, let deadline = groupKillDeadline(lease) else { return nil }
            return (pgid, deadline)
        }.sorted { $0.pgid < $1.pgid }
    }

    /// The process groups of draining leases that needed shared units: after a restart their
    /// units were on the previous run's host lease, which nobody renews, so the daemon stops
    /// them at once rather than after `kill_grace_ms`.
    public var drainingGroupsOfSharedUnits: [Int32] {
        guard claimsShared else { return [] }
        return Set(draining.values.filter { !sharedUnits($0.request, model: $0.model).isEmpty }.compactMap(\.pgid)).sorted()
    }

    /// The claim of an unpark of a lease leaving the tables is answered `leaseGone` and
    /// dropped.
    mutating func dropUnparkClaim(of fence: UInt64) {
        guard let claim = cluster?.claims[fence], !claim.abandoned else { return }
        cluster!.claims[fence]!.abandoned = true
        effects.append(.failed(claim.ticket, .leaseGone))
    }

    /// Drops the requests of claims that `matches` picks (their claims stay until their
    /// outcome is known, holding their reservation) and answers each with `failure`, if any.
    /// - Returns: whether any was dropped.
    @discardableResult
    mutating func dropClaims(answering failure: WaitFailure?, where matches: (Claim) -> Bool) -> Bool {
        guard let claims = cluster?.claims, !claims.isEmpty else { return false }
        var dropped = false
        for fence in claims.keys.sorted() {
            let claim = claims[fence]!
            guard !claim.abandoned, matches(claim) else { continue }
            cluster!.claims[fence]!.abandoned = true
            if let failure { effects.append(.failed(claim.ticket, failure)) }
            dropped = true
        }
        return dropped
    }

    /// Answers `timeout` to the claiming requests whose `wait_ms` has passed: the cluster did
    /// not answer in time. Their claims stay until their outcome is known.
    mutating func timeOutClaims(now: Instant) {
        guard let claims = cluster?.claims, !claims.isEmpty else { return }
        for fence in claims.keys.sorted() {
            let claim = claims[fence]!
            guard !claim.abandoned, claim.answerDeadline <= now else { continue }
            cluster!.claims[fence]!.abandoned = true
            metrics.timedOutTotal += 1
            let limits = claim.units.map(\.limit.description).joined(separator: ", ")
            let detail = "the cluster did not answer the claim of a unit of \(limits) in time"
            effects.append(.failed(claim.ticket, .timeout(Refusal(.cluster, detail: detail))))
        }
    }

    /// The earliest `wait_ms` end of a claiming request.
    var nextClaimDeadline: Instant? {
        cluster?.claims.values.lazy.filter { !$0.abandoned }.map(\.answerDeadline).min()
    }

    /// Claim problems for `invariantViolations`; counts the claims' reservations into `recount`.
    func claimViolations(recount: inout Occupancy) -> [String] {
        guard let cluster else { return [] }
        var problems: [String] = []
        for (fence, claim) in cluster.claims {
            recount.take(claim.request, model: claim.candidate?.key)
            switch claim.purpose {
            case .acquire(let lease):
                if let workspace = lease.request.workspace.map(ExactName.init) {
                    if recount.workspaces[workspace] != nil { problems.append("workspace \(workspace) held twice") }
                    recount.workspaces[workspace] = fence
                }
                if leases[fence] != nil || draining[fence] != nil || fence > fenceHighWater {
                    problems.append("claim \(fence) is also a lease, or above high water")
                }
            case .unpark:
                if !claim.abandoned && leases[fence]?.parked != true { problems.append("unpark claim \(fence) of a lease not parked") }
            }
            if !claim.abandoned && queue.id(of: claim.ticket) != nil { problems.append("claim \(fence) also waits") }
        }
        for lease in leases.values where lease.clusterFence != nil && lease.parked {
            problems.append("lease \(lease.fence) holds a shared unit while parked")
        }
        return problems
    }

    /// The cluster as `status` shows it (protocol/CLUSTER.md §6).
    func clusterInfo(now: Instant) -> BrokerStatus.ClusterUse? {
        guard let cluster else { return nil }
        let claims = cluster.claims.values
        return BrokerStatus.ClusterUse(
            host: config.cluster?.host, endpoints: config.cluster?.endpoints ?? [], state: cluster.reach, onLoss: cluster.onLoss, sinceMilliseconds: cluster.since.map { now.milliseconds(since: $0) },
            validForMilliseconds: cluster.safeDeadline.map { $0.milliseconds(since: now) },
            claiming: claims.count, outcomeUnknown: claims.filter(\.outcomeUnknown).count,
            exhausted: cluster.exhausted.sorted(), metrics: cluster.metrics)
    }
}
