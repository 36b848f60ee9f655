extension Broker {
    /// Permits in use now (parked leases hold none).
    public var permitsInUse: Int { occupancy.global }

    /// Builds the status picture at `now`. Each waiter's reason is what blocks it now.
    public func status(now: Instant) -> BrokerStatus {
        let modes = Mode.rotation.map { mode in
            BrokerStatus.ModeUse(mode: mode, limit: config.limits.quota(of: mode), inUse: occupancy.inUse(mode),
                                 share: config.limits.fairness == .proportional ? fairShare(mode) : nil)
        }
        let waiting = waiterInfos(now: now)
        var queuedByReason: [BlockReason: Int] = [:]
        for waiter in waiting { queuedByReason[waiter.reason, default: 0] += 1 }
        return BrokerStatus(
            fairness: config.limits.fairness,
            global: .init(limit: config.limits.global, inUse: occupancy.global, waiting: queue.count),
            modes: modes, projects: projectInfos(), models: modelInfos(now: now), pools: poolInfos(waiting),
            workspaces: occupancy.workspaces.sorted { $0.key < $1.key }.map {
                BrokerStatus.WorkspaceLock(path: $0.key.text, fence: $0.value,
                                           parked: (leases[$0.value] ?? draining[$0.value])?.parked ?? false)
            },
            throttles: throttles.active(now: now).map {
                BrokerStatus.Throttle(provider: $0.key.provider, tenant: $0.key.tenant,
                                      remainingMilliseconds: $0.remainingMilliseconds)
            },
            leases: (Array(leases.values) + Array(draining.values)).sorted { $0.fence < $1.fence }
                .map { leaseInfo($0, now: now) },
            waiting: waiting, metrics: metrics, queuedByReason: queuedByReason, cluster: clusterInfo(now: now))
    }

    private func projectInfos() -> [BrokerStatus.ProjectUse] {
        var names = config.projects.map { ExactName($0.name) }
        var seen = Set(names)
        let others = Set(occupancy.projects.keys).union(paused).union(breaker.projectNames)
            .union(queue.waiters.values.map { ExactName($0.request.project) })
        for name in others.sorted() where seen.insert(name).inserted { names.append(name) }
        return names.map { name in
            let use = occupancy.projects[name] ?? Occupancy.ProjectUse()
            return BrokerStatus.ProjectUse(name: name.text, limit: projectCaps[name]?.max,
                                           mentionLimit: projectCaps[name]?.maxMention, inUse: use.total,
                                           mentionInUse: use.mention, paused: paused.contains(name),
                                           failures: breaker.count(name))
        }
    }

    private func modelInfos(now: Instant) -> [BrokerStatus.ModelUse] {
        var pools = models.configuredPools
        var seen = Set(pools)
        for pool in occupancy.pools.keys.sorted() where seen.insert(pool).inserted { pools.append(pool) }
        let flagged = modelFlags.active(now: now).compactMap { ModelKey(parsing: $0) }
        for pool in flagged.sorted() where seen.insert(pool).inserted { pools.append(pool) }
        return pools.map { pool in
            let traits = models.traits(of: pool)
            return BrokerStatus.ModelUse(model: pool, limit: models.limit(of: pool), inUse: occupancy.pools[pool] ?? 0,
                                         tier: traits.tier, tools: traits.tools,
                                         limitedForMilliseconds: flagEnd(pool, now: now).map { $0.milliseconds(since: now) })
        }
    }

    private func leaseInfo(_ lease: Lease, now: Instant) -> BrokerStatus.LeaseInfo {
        BrokerStatus.LeaseInfo(
            fence: lease.fence, project: lease.request.project, mode: lease.request.mode, model: lease.model,
            route: lease.route, workspace: lease.request.workspace, tenant: lease.request.tenant,
            holder: lease.holder, pid: lease.pid, ageMilliseconds: now.milliseconds(since: lease.grantedAt),
            sinceHeartbeatMilliseconds: now.milliseconds(since: lease.lastHeartbeatAt),
            expiresInMilliseconds: lease.drain == nil ? lease.deadline.milliseconds(since: now) : 0,
            bound: lease.bound && lease.drain == nil, parked: lease.parked, pgid: lease.pgid, draining: lease.drain?.cause,
            drainingMilliseconds: lease.drain.map { now.milliseconds(since: $0.since) }, pools: lease.request.pools,
            clusterFence: lease.clusterFence)
    }

    /// Where each waiter stands now: what blocks it and its place in line, for the daemon's
    /// periodic `queued` updates (protocol/PROTOCOL.md §9.1).
    public func waiterProgress(now: Instant) -> [(ticket: Ticket, refusal: Refusal, position: Int)] {
        let positions = self.positions(now: now)
        return queue.inArrivalOrder().map { waiter in
            var owner: UInt64?
            if case .unpark(let fence) = waiter.kind { owner = fence }
            var refusal = Refusal(.global, detail: "waiting")
            if case .block(let blocked) = evaluate(waiter.request, candidates: waiter.candidates, owner: owner, now: now) {
                refusal = blocked
            }
            return (waiter.ticket, refusal, positions[waiter.id]!)
        }
    }

    /// The tickets of waiting acquires whose holder label is `holder` (for `cancel` by holder).
    public func waitingTickets(holder: String) -> [Ticket] {
        queue.inArrivalOrder().compactMap { waiter in
            if case .acquire(_, _, _, _, let label) = waiter.kind, label == holder { return waiter.ticket }
            return nil
        }
    }

    private func waiterInfos(now: Instant) -> [BrokerStatus.WaiterInfo] {
        let positions = self.positions(now: now)
        return queue.inArrivalOrder().map { waiter in
            var owner: UInt64?
            var unpark = false
            if case .unpark(let fence) = waiter.kind {
                owner = fence
                unpark = true
            }
            var reason = BlockReason.global
            var pool: String?
            if case .block(let refusal) = evaluate(waiter.request, candidates: waiter.candidates, owner: owner, now: now) {
                reason = refusal.reason
                if reason == .pool { pool = fullPool(waiter.request)?.name }
            }
            var holder: String?
            if case .acquire(_, _, _, _, let label) = waiter.kind { holder = label } else if let owner {
                holder = leases[owner]?.holder
            }
            return BrokerStatus.WaiterInfo(
                project: waiter.request.project, mode: waiter.request.mode, model: waiter.request.model,
                workspace: waiter.request.workspace, holder: holder, priority: waiter.request.priority,
                reason: reason, waitedMilliseconds: now.milliseconds(since: waiter.enqueuedAt),
                position: positions[waiter.id]!, unpark: unpark, pool: pool)
        }
    }
}
