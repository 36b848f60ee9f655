extension Broker {
    /// Pauses a project: its acquires are held with `paused` (protocol/PROTOCOL.md §8.8). The daemon creates
    /// the flag file on the `.paused` effect, before it answers.
    /// - Returns: whether it was newly paused, or a bad project name (`__global__` included:
    ///   it is never paused).
    public mutating func pause(_ project: String, now: Instant) -> Transition<Result<Bool, LeaseError>> {
        let reply = decidePause(project, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `pause`'s decision; its effects stay in the outbox.
    mutating func decidePause(_ project: String, now: Instant) -> Result<Bool, LeaseError> {
        liftEndedBlocks(now: now)
        if let problem = Self.pausableProblem(project) { return .failure(.badRequest(field: "project", message: problem)) }
        guard paused.insert(ExactName(project)).inserted else { return .success(false) }
        effects.append(.paused(project: project))
        return .success(true)
    }

    /// Resumes a project and re-arms its circuit breaker; its waiters are granted if they fit.
    /// - Returns: whether it was paused.
    public mutating func resume(_ project: String, now: Instant) -> Transition<Result<Bool, LeaseError>> {
        let reply = decideResume(project, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `resume`'s decision; its effects stay in the outbox.
    mutating func decideResume(_ project: String, now: Instant) -> Result<Bool, LeaseError> {
        liftEndedBlocks(now: now)
        if let problem = Self.pausableProblem(project) { return .failure(.badRequest(field: "project", message: problem)) }
        breaker.rearm(project: project)
        guard paused.remove(ExactName(project)) != nil else { return .success(false) }
        effects.append(.resumed(project: project))
        dispatch(now: now)
        debugCheckInvariants(now: now)
        return .success(true)
    }

    /// Makes the paused set equal to the flag files the daemon found in the pause directory
    /// (at start, on reload, and when the directory changes). Names that are not valid
    /// project names are ignored. Pass the file names as listed (an array keeps canonically
    /// equivalent spellings apart; a `Set<String>` has already merged them).
    public mutating func syncPaused(_ projects: some Sequence<String>, now: Instant) -> Transition<Void> {
        decideSyncPaused(projects, now: now)
        return Transition(reply: (), effects: takeEffects())
    }

    /// `syncPaused`'s decision; its effects stay in the outbox.
    mutating func decideSyncPaused(_ projects: some Sequence<String>, now: Instant) {
        liftEndedBlocks(now: now)
        let wanted = Set(projects.filter { Self.pausableProblem($0) == nil }.map(ExactName.init))
        for project in wanted.subtracting(paused).sorted() {
            paused.insert(project)
            effects.append(.paused(project: project.text))
        }
        let lifted = paused.subtracting(wanted).sorted()
        for project in lifted {
            paused.remove(project)
            breaker.rearm(project: project.text)
            effects.append(.resumed(project: project.text))
        }
        if !lifted.isEmpty { dispatch(now: now) }
    }

    /// Why a name cannot be paused, or nil.
    static func pausableProblem(_ project: String) -> String? {
        if let problem = Names.projectNameProblem(project) { return problem }
        if project == Names.globalProject { return "\(Names.globalProject) cannot be paused" }
        return nil
    }

    /// Records that a provider rate-limited a tenant. Never shortens a longer throttle.
    /// - Returns: the milliseconds the throttle is now in force for.
    public mutating func throttle(provider: String, tenant: String, retryAfterMilliseconds: UInt64,
                                  now: Instant) -> Transition<UInt64> {
        let reply = decideThrottle(provider: provider, tenant: tenant, retryAfterMilliseconds: retryAfterMilliseconds, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `throttle`'s decision; its effects stay in the outbox.
    @discardableResult
    mutating func decideThrottle(provider: String, tenant: String, retryAfterMilliseconds: UInt64,
                                  now: Instant) -> UInt64 {
        liftEndedBlocks(now: now)
        let key = ThrottleTable.Key(tenant: tenant, provider: provider)
        let end = throttles.record(key, retryAfterMilliseconds: retryAfterMilliseconds, now: now)
        let remaining = end.milliseconds(since: now)
        effects.append(.throttled(provider: key.provider, tenant: tenant, retryAfterMilliseconds: remaining))
        return remaining
    }

    /// Lifts a provider's throttle for a tenant before its end (an operator's `throttle` with
    /// `clear: true`); the waiters it held are granted if they fit.
    /// - Returns: whether a throttle was in force.
    public mutating func clearThrottle(provider: String, tenant: String, now: Instant) -> Transition<Bool> {
        let reply = decideClearThrottle(provider: provider, tenant: tenant, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `clearThrottle`'s decision; its effects stay in the outbox.
    mutating func decideClearThrottle(provider: String, tenant: String, now: Instant) -> Bool {
        liftEndedBlocks(now: now)
        let key = ThrottleTable.Key(tenant: tenant, provider: provider)
        guard throttles.clear(key, now: now) else { return false }
        effects.append(.throttleCleared(provider: key.provider, tenant: tenant))
        dispatch(now: now)
        debugCheckInvariants(now: now)
        return true
    }

    /// Lifts a model's subscription-limit flag before its TTL (`unflag`): the limiter counts the
    /// model as free again and performance stops reporting the limit. Its events stay.
    /// - Returns: whether a flag was in force.
    public mutating func unflag(model: String, now: Instant, wall: WallTime) -> Transition<Bool> {
        let reply = decideUnflag(model: model, now: now, wall: wall)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `unflag`'s decision; its effects stay in the outbox.
    mutating func decideUnflag(model: String, now: Instant, wall: WallTime) -> Bool {
        liftEndedBlocks(now: now)
        let key = Telemetry.modelKey(model)
        let limiterFlag = modelFlags.remove(key, now: now)
        let telemetryFlag = telemetry.unflag(model: key, now: wall)
        guard limiterFlag || telemetryFlag else { return false }
        effects.append(.unflagged(model: key))
        dispatch(now: now)
        debugCheckInvariants(now: now)
        return true
    }

    /// Records a `project-meta` run's outcome; a trip pauses the project.
    public mutating func report(project: String, agent: String, success: Bool,
                                now: Instant) -> Transition<Result<CircuitBreaker.Outcome, LeaseError>> {
        let reply = decideReport(project: project, agent: agent, success: success, now: now)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `report`'s decision; its effects stay in the outbox.
    mutating func decideReport(project: String, agent: String, success: Bool,
                                now: Instant) -> Result<CircuitBreaker.Outcome, LeaseError> {
        liftEndedBlocks(now: now)
        if let problem = Names.projectNameProblem(project) { return .failure(.badRequest(field: "project", message: problem)) }
        let outcome = breaker.report(project: project, agent: agent, success: success)
        if outcome.tripped {
            if project != Names.globalProject, paused.insert(ExactName(project)).inserted {
                effects.append(.paused(project: project))
            }
            effects.append(.tripped(project: project, failures: outcome.count))
        }
        return .success(outcome)
    }

    /// Records a completed model call; a subscription-limit error flags its model as full.
    public mutating func record(_ event: CompletionEvent, now: Instant) -> Transition<Void> {
        decideRecord(event, now: now)
        return Transition(reply: (), effects: takeEffects())
    }

    /// `record`'s decision; its effects stay in the outbox.
    mutating func decideRecord(_ event: CompletionEvent, now: Instant) {
        liftEndedBlocks(now: now)
        let evictedBefore = telemetry.evictions.models
        let raised = telemetry.record(event)
        if telemetry.evictions.models != evictedBefore { forgetFlagsOfEvictedModels() }
        guard let flag = raised else { return }
        let ttl = UInt64(max(0, flag.expiresAt.milliseconds(since: event.completedAt)))
        let end = now.adding(milliseconds: ttl)
        modelFlags[flag.model] = max(end, modelFlags[flag.model] ?? end)
        effects.append(.flagged(model: flag.model, milliseconds: ttl))
    }

    /// A subscription-limit flag another host raised (protocol/CLUSTER.md §2, `flags/<model>`):
    /// the limiter counts the model as full for `milliseconds`, as for a flag raised here. Its
    /// telemetry stays this host's own. Never shortens a longer flag.
    /// - Returns: whether the flag now lasts longer than before.
    public mutating func flagFromCluster(model: String, milliseconds: UInt64, now: Instant) -> Transition<Bool> {
        liftEndedBlocks(now: now)
        let key = Telemetry.modelKey(model)
        let end = now.adding(milliseconds: milliseconds)
        let longer = modelFlags[key].map { end > $0 } ?? true
        if longer { modelFlags[key] = end }
        return Transition(reply: longer, effects: takeEffects())
    }

    /// Drops the limiter's flags of models telemetry has evicted, so they stay bounded too.
    private mutating func forgetFlagsOfEvictedModels() {
        let telemetry = self.telemetry
        modelFlags.retain { telemetry.knows(model: $0) }
    }

    /// The telemetry snapshot of one model, or of every model.
    public func performance(model: String?, wall: WallTime) -> [ModelPerformance] {
        guard let model else { return telemetry.performances(now: wall) }
        return [telemetry.performance(of: model, now: wall)]
    }

    /// Token and cost sums of one session.
    public func usage(session: String, wall: WallTime) -> UsageSnapshot {
        telemetry.usage(session: session, now: wall)
    }

    /// Applies a new config to future grants; live leases are kept even where they now exceed
    /// a lowered limit (no new grant happens until use is back under it). Waiters are
    /// re-checked at once. `[cluster]` is kept as it was at the start.
    public mutating func reload(_ newConfig: TurnstileConfig, now: Instant) -> Transition<Void> {
        decideReload(newConfig, now: now)
        return Transition(reply: (), effects: takeEffects())
    }

    /// `reload`'s decision; its effects stay in the outbox.
    mutating func decideReload(_ newConfig: TurnstileConfig, now: Instant) {
        liftEndedBlocks(now: now)
        // `[cluster]` is the transport's connection to etcd, made at start: it changes at the
        // next start only.
        var newConfig = newConfig
        newConfig.cluster = config.cluster
        config = newConfig
        models = ModelTable(providers: newConfig.providers, models: newConfig.models)
        projectCaps = Dictionary(newConfig.projects.map { (ExactName($0.name), $0) }, uniquingKeysWith: { $1 })
        let oldPoolCaps = poolCaps
        poolCaps = Self.poolCaps(newConfig)
        let droppedPools = reconcilePools(configuredBefore: oldPoolCaps)
        breaker.setThreshold(newConfig.circuitBreaker.threshold)
        telemetry.configure(windowSeconds: newConfig.telemetry.windowSeconds,
                            subscriptionLimitTTLSeconds: newConfig.telemetry.subscriptionLimitTTLSeconds,
                            bounds: newConfig.telemetry.bounds)
        forgetFlagsOfEvictedModels()
        let models = self.models
        queue.recomputeCandidates { request in
            if !droppedPools.isEmpty { _ = Self.recordLimits(droppedPools, in: &request) }
            return request.model.map { models.candidates(primary: $0, chain: request.fallback) } ?? []
        }
        dispatch(now: now)
        debugCheckInvariants(now: now)
    }
}
