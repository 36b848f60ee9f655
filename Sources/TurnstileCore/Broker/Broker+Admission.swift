/// The verdict of the admission check.
enum Admission: Equatable {
    /// Every limit allows it, with this model (nil if it asked for none).
    case admit(ModelCandidate?)
    /// The first limit that blocks it.
    case block(Refusal)
}

extension Broker {
    /// Checks a request against every limit, in the order of protocol/PROTOCOL.md §6, without changing anything.
    /// Immediate acquires, dispatch, unpark and status all call this one function, so what
    /// is granted and what is reported can never disagree.
    /// - Parameters:
    ///   - request: the dimensions.
    ///   - candidates: its model candidates, primary first.
    ///   - owner: the fence of the lease asking (an unpark), whose own workspace lock allows it.
    func evaluate(_ request: AdmissionRequest, candidates: [ModelCandidate], owner: UInt64? = nil,
                  now: Instant) -> Admission {
        let project = ExactName(request.project)
        if let refusal = pauseBlock(project) { return .block(refusal) }
        for provider in request.providers {
            if let remaining = throttles.remaining(.init(tenant: request.tenant, provider: provider), now: now) {
                return .block(Refusal(.rateLimit, retryAfterMilliseconds: remaining,
                                      detail: "provider \(provider) is rate limited for tenant \(request.tenant)"))
            }
        }
        if let workspace = request.workspace, let holder = occupancy.workspaces[ExactName(workspace)], holder != owner {
            return .block(Refusal(.workspaceLock, limit: 1, inUse: 1, detail: "workspace \(workspace) is locked"))
        }
        if request.namesPools, let refusal = poolBlock(request) { return .block(refusal) }
        if let refusal = modeBlock(request.mode) { return .block(refusal) }
        if let refusal = projectBlock(project, mode: request.mode) { return .block(refusal) }
        if let refusal = proportionalBlock(request.mode) { return .block(refusal) }
        var chosen: ModelCandidate?
        if !candidates.isEmpty {
            switch chooseModel(candidates, tenant: request.tenant, now: now) {
            case .success(let candidate): chosen = candidate
            case .failure(let refusal): return .block(refusal)
            }
        }
        if let refusal = globalBlock() { return .block(refusal) }
        if claimsShared, let refusal = clusterBlock(request) { return .block(refusal) }
        return .admit(chosen)
    }

    /// `cluster`: the request needs a unit of a shared project cap or pool and the cluster
    /// cannot be reached (a model's is settled by the model choice, which may fall back).
    func clusterBlock(_ request: AdmissionRequest) -> Refusal? {
        guard !isClusterAvailable, let limit = sharedUnits(request, model: nil).first?.limit else { return nil }
        return Refusal(.cluster, detail: "\(limit) is shared across hosts and the cluster cannot be reached")
    }

    /// `paused`: the project has a pause flag (never `__global__`).
    func pauseBlock(_ project: ExactName) -> Refusal? {
        guard !paused.isEmpty, paused.contains(project) else { return nil }
        return Refusal(.paused, detail: "project \(project) is paused")
    }

    /// `mode`: the mode's global quota is used up.
    func modeBlock(_ mode: Mode) -> Refusal? {
        guard let quota = config.limits.quota(of: mode), occupancy.inUse(mode) >= quota else { return nil }
        return Refusal(.mode, limit: quota, inUse: occupancy.inUse(mode), detail: "mode \(mode.rawValue) is at its quota")
    }

    /// `project` and `mention`: the project's caps.
    func projectBlock(_ project: ExactName, mode: Mode) -> Refusal? {
        guard let caps = projectCaps[project] else { return nil }
        let use = occupancy.projects[project] ?? Occupancy.ProjectUse()
        if let max = caps.max, use.total >= max {
            return Refusal(.project, limit: max, inUse: use.total, detail: "project \(project) is at its cap")
        }
        if mode == .mention, let max = caps.maxMention, use.mention >= max {
            return Refusal(.mention, limit: max, inUse: use.mention, detail: "project \(project) is at its mention cap")
        }
        guard let cluster, !cluster.exhausted.isEmpty else { return nil }
        if let max = caps.max, cluster.exhausted.contains(.project(project)) {
            return Refusal(.project, limit: max, inUse: max, detail: "project \(project) is at its cap across the cluster")
        }
        if mode == .mention, let max = caps.maxMention, cluster.exhausted.contains(.projectMentions(project)) {
            return Refusal(.mention, limit: max, inUse: max, detail: "project \(project) is at its mention cap across the cluster")
        }
        return nil
    }

    /// `proportional`: under that policy, a quoted mode at or over its fair share (unless the
    /// share is 0: the seed's escape).
    func proportionalBlock(_ mode: Mode) -> Refusal? {
        guard config.limits.fairness == .proportional, let share = fairShare(mode), share > 0,
              occupancy.inUse(mode) >= share else { return nil }
        return Refusal(.proportional, limit: share, inUse: occupancy.inUse(mode),
                       detail: "mode \(mode.rawValue) is at its proportional share")
    }

    /// `global`: every permit is out.
    func globalBlock() -> Refusal? {
        guard occupancy.global >= config.limits.global else { return nil }
        return Refusal(.global, limit: config.limits.global, inUse: occupancy.global, detail: "all permits are in use")
    }

    /// A quoted mode's share of the global limit: `floor(global × quota / (time + issue))`;
    /// nil for the exempt modes. The product is taken at double width, so it cannot overflow
    /// whatever the limits (the quotient is at most `global`, as `quota ≤ time + issue`).
    func fairShare(_ mode: Mode) -> Int? {
        let limits = config.limits
        guard let quota = limits.quota(of: mode) else { return nil }
        let global = UInt(max(limits.global, 0))
        // Two non-negative Ints sum to at most 2^64 − 2: exact in a UInt.
        let quotas = UInt(max(limits.time, 0)) + UInt(max(limits.issue, 0))
        guard quotas > 0 else { return 0 }
        let share = quotas.dividingFullWidth(global.multipliedFullWidth(by: UInt(max(quota, 0)))).quotient
        return Int(share)
    }

    /// The first free candidate, primary first. A candidate is free when its pool is under its
    /// limit, it is not flagged subscription-limited, and its provider is not throttled for the
    /// tenant; when models are shared across hosts, also when a claim has not found it full
    /// across the cluster, and only while the cluster can be reached (protocol/CLUSTER.md §5).
    /// When none is free and some were blocked only by a throttle, the answer is `rate_limit`
    /// with the earliest throttle end (protocol/PROTOCOL.md); else, when some were blocked only
    /// by the cluster being out of reach, `cluster`; otherwise `model`.
    func chooseModel(_ candidates: [ModelCandidate], tenant: String, now: Instant) -> Result<ModelCandidate, Refusal> {
        var throttledOnly: (remaining: UInt64, provider: String)?
        var unreachable: ModelKey?
        for candidate in candidates {
            let full = (occupancy.pools[candidate.key] ?? 0) >= models.limit(of: candidate.key)
                || flagEnd(candidate.key, now: now) != nil
                || (claimsModels && isFullAcrossCluster(.model(candidate.key)))
            let key = ThrottleTable.Key(tenant: tenant, provider: candidate.key.provider)
            if let remaining = throttles.remaining(key, now: now) {
                if !full, throttledOnly == nil || remaining < throttledOnly!.remaining {
                    throttledOnly = (remaining, candidate.key.provider)
                }
                continue
            }
            if full { continue }
            if claimsModels && !isClusterAvailable {
                if unreachable == nil { unreachable = candidate.key }
                continue
            }
            return .success(candidate)
        }
        if let throttledOnly {
            return .failure(Refusal(.rateLimit, retryAfterMilliseconds: throttledOnly.remaining,
                                    detail: "provider \(throttledOnly.provider) is rate limited for tenant \(tenant)"))
        }
        if let unreachable {
            return .failure(Refusal(.cluster, detail: "model \(unreachable) is shared across hosts and the cluster cannot be reached"))
        }
        return .failure(modelRefusal(candidates[0].key, now: now))
    }

    /// `model`: the primary pool is at its limit, subscription-limited, or (shared across hosts)
    /// found full across the cluster by a claim, whose `in_use` is then the limit.
    private func modelRefusal(_ primary: ModelKey, now: Instant) -> Refusal {
        let limit = models.limit(of: primary)
        if let flagged = flagEnd(primary, now: now) {
            return Refusal(.model, limit: limit, inUse: occupancy.pools[primary] ?? 0,
                           retryAfterMilliseconds: flagged.milliseconds(since: now), detail: "model \(primary) is subscription-limited")
        }
        if claimsModels && isFullAcrossCluster(.model(primary)) {
            return Refusal(.model, limit: limit, inUse: limit, detail: "model \(primary) is at its limit across the cluster")
        }
        return Refusal(.model, limit: limit, inUse: occupancy.pools[primary] ?? 0, detail: "model \(primary) is at its limit")
    }

    /// When a pool's subscription-limit flag ends, if one is in force (a flag on the bare name
    /// covers every provider's pool of it).
    func flagEnd(_ pool: ModelKey, now: Instant) -> Instant? {
        if modelFlags.isEmpty { return nil }
        let ends = [modelFlags[pool.description], modelFlags[pool.model]].compactMap { $0 }.filter { $0 > now }
        return ends.max()
    }
}
