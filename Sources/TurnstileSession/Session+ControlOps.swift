import TurnstileCore
import TurnstileProtocol

extension Session {
    /// The protocol revision this daemon speaks.
    static let protocolVersion = 1

    /// `hello`: who the daemon is.
    func hello(_ context: RequestContext) {
        succeed(context) { w in
            w.key("server"); w.string("turnstiled")
            w.key("version"); w.string(self.version)
            w.key("protocol"); w.int(Self.protocolVersion)
            w.key("pid"); w.int(self.host.daemonPID)
        }
    }

    /// `status`: the broker's picture plus the daemon's own.
    func status(_ context: RequestContext) {
        let at = now
        let status = broker.status(now: at)
        let info = serverInfo(at)
        let transport = host.clusterTransport
        send(to: context.connection) { StatusEncoding.write(&$0, id: context.id, status, server: info, transport: transport) }
    }

    /// `pause` (admin): the flag file exists before the answer leaves.
    func pause(_ project: String, _ context: RequestContext) {
        if project == Names.globalProject { return fail(context, .badRequest, "\(project) cannot be paused", field: "project") }
        if let problem = host.createPauseFlag(project) { return fail(context, .unavailable, problem) }
        switch take(broker.pause(project, now: now)) {
        case .success(let changed):
            if changed { logger.info("paused", metadata: ["project": "\(project)", "by_uid": "\(context.connection.uid)"]) }
            succeed(context) { $0.key("paused"); $0.bool(true) }
        case .failure(let error): fail(context, error)
        }
    }

    /// `resume` (admin): the flag file is gone before the answer leaves; the breaker re-arms.
    func resume(_ project: String, _ context: RequestContext) {
        if project == Names.globalProject { return fail(context, .badRequest, "\(project) cannot be paused", field: "project") }
        if let problem = host.removePauseFlag(project) { return fail(context, .unavailable, problem) }
        switch take(broker.resume(project, now: now)) {
        case .success(let changed):
            if changed { logger.info("resumed", metadata: ["project": "\(project)", "by_uid": "\(context.connection.uid)"]) }
            succeed(context) { w in
                w.key("paused"); w.bool(false)
                w.key("was_paused"); w.bool(changed)
            }
        case .failure(let error): fail(context, error)
        }
    }

    /// `report`: a `project-meta` run's outcome for the circuit breaker.
    func report(project: String, agent: String, success: Bool, _ context: RequestContext) {
        switch take(broker.report(project: project, agent: agent, success: success, now: now)) {
        case .success(let outcome):
            if outcome.counted {
                outbox.journal.breaker(project: project, state: broker.breaker.exportState()[project]
                    ?? CircuitBreaker.ProjectState(failures: 0, tripped: false))
            }
            succeed(context) { w in
                w.key("count"); w.int(outcome.count)
                w.key("tripped"); w.bool(outcome.tripped)
                w.key("counted"); w.bool(outcome.counted)
            }
        case .failure(let error): fail(context, error)
        }
    }

    /// `throttle` (admin): a provider rate-limited a tenant.
    func throttle(provider: String, tenant: String, retryAfter: RetryAfter, _ context: RequestContext) {
        guard let delay = retryAfter.delayMilliseconds(wall: wall) else {
            return fail(context, .badRequest, "retry_after must be whole seconds or an HTTP date", field: "retry_after")
        }
        let effective = take(broker.throttle(provider: provider, tenant: tenant, retryAfterMilliseconds: delay, now: now))
        logger.info("throttled", metadata: ["provider": "\(provider)", "tenant": "\(tenant)", "retry_after_ms": "\(effective)"])
        succeed(context) { $0.key("retry_after_ms"); $0.int(effective) }
    }

    /// `throttle` with `clear: true` (admin): lift a throttle before its end.
    func clearThrottle(provider: String, tenant: String, _ context: RequestContext) {
        let lifted = take(broker.clearThrottle(provider: provider, tenant: tenant, now: now))
        if lifted { logger.info("throttle cleared", metadata: ["provider": "\(provider)", "tenant": "\(tenant)"]) }
        succeed(context) { $0.key("cleared"); $0.bool(lifted) }
    }

    /// `unflag` (admin): lift a model's subscription-limit flag before its TTL.
    func unflag(model: String, _ context: RequestContext) {
        let lifted = take(broker.unflag(model: model, now: now, wall: wall))
        if lifted { logger.info("subscription-limit flag lifted", metadata: ["model": "\(model)"]) }
        succeed(context) { $0.key("unflagged"); $0.bool(lifted) }
    }

    /// `record`: a completed model call, stamped with the daemon's wall clock.
    func record(_ event: CompletionEvent, _ context: RequestContext) {
        var stamped = event
        stamped.completedAt = wall
        take(broker.record(stamped, now: now))
        outbox.journal.record(stamped)
        let limited = broker.performance(model: stamped.model, wall: stamped.completedAt).first?.subscriptionLimitReached ?? false
        succeed(context) { $0.key("subscription_limited"); $0.bool(limited) }
    }

    /// `performance`: one model's snapshot, or every model's.
    func performance(_ model: String?, _ context: RequestContext) {
        let models = broker.performance(model: model, wall: wall)
        send(to: context.connection) { TelemetryEncoding.performance(&$0, id: context.id, models) }
    }

    /// `usage`: one session's sums.
    func usage(_ session: String, _ context: RequestContext) {
        let usage = broker.usage(session: session, wall: wall)
        send(to: context.connection) { TelemetryEncoding.usage(&$0, id: context.id, usage) }
    }

    /// `metrics`: Prometheus text.
    func metrics(_ context: RequestContext) {
        let at = now
        let text = MetricsText.render(broker.status(now: at), server: serverInfo(at),
                                      telemetryEvictions: broker.telemetry.evictions,
                                      storage: .init(failing: storageFailing, failures: storageFailures),
                                      transport: host.clusterTransport)
        succeed(context) { $0.key("text"); $0.string(text) }
    }

    /// `watch`: from now on this connection gets every event.
    func watch(_ context: RequestContext) {
        watchers[context.connection.id] = context.connection
        succeed(context)
    }

    /// `reload` (admin): re-read the config file.
    func reload(_ context: RequestContext) {
        if let error = reload() { return fail(context, .badConfig, error.description) }
        succeed(context)
    }
}
