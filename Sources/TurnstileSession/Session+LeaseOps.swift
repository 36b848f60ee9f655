import TurnstileCore
import TurnstileProtocol

extension Session {
    /// `acquire`: granted now, refused now, or queued (with a `queued` event if asked).
    func acquire(_ request: AcquireRequest, notify: Bool, _ context: RequestContext) {
        let connection = context.connection
        if let pid = request.pid, host.isProcessGone(pid) {
            return fail(context, .badRequest, "pid \(pid) names no live process", field: "pid")
        }
        if let pgid = request.pgid, let refusal = groupRefusal(pgid, for: connection) {
            return fail(context, refusal.code, refusal.message, field: "pgid")
        }
        let ticket = connection.nextTicket()
        requestInFlight = (ticket, context.id, context.connection)
        answer(take(broker.acquire(request, ticket: ticket, now: now)), ticket: ticket, notify: notify, context)
    }

    /// Why a peer may not bind a lease to process group `pgid`, or nil. The daemon signals a
    /// draining lease's group, so a peer binds only a live group of its own (root: any), and
    /// never the daemon's own group or init's (protocol/PROTOCOL.md §10.10).
    private func groupRefusal(_ pgid: Int32, for connection: SessionConnection) -> (code: ErrorCode, message: String)? {
        guard host.isProcessGroupAlive(pgid) else { return (.badRequest, "pgid \(pgid) names no live process group") }
        if pgid == 1 || pgid == host.daemonProcessGroup {
            return (.badRequest, "pgid \(pgid) is \(pgid == 1 ? "init's" : "turnstiled's own") process group")
        }
        guard connection.uid != 0 else { return nil }
        guard let owner = host.processGroupOwner(pgid), owner == connection.uid else {
            return (.forbidden, "process group \(pgid) is not yours (uid \(connection.uid)): the daemon would signal it")
        }
        return nil
    }

    /// Answers what an `acquire` or `unpark` got at once; a waiting one is remembered.
    private func answer(_ outcome: AcquireOutcome, ticket: Ticket, notify: Bool, _ context: RequestContext) {
        let connection = context.connection
        switch outcome {
        case .granted:
            break // answered by its `granted` effect, as a grant from the queue is
        case .claiming:
            // Answered once its claim succeeds (by its `granted` effect), or by a failure.
            connection.remember(ticket, id: context.id, key: context.key)
        case .refused(let refusal):
            if debugLogging { logger.debug("refused", metadata: ["reason": "\(refusal.reason.rawValue)", "detail": "\(refusal.detail)"]) }
            send(to: connection) { Answers.refused(&$0, id: context.id, refusal) }
        case .queued(let position, let refusal):
            connection.remember(ticket, id: context.id, key: context.key, told: notify ? (refusal.reason, position) : nil)
            if debugLogging { logger.debug("queued", metadata: ["reason": "\(refusal.reason.rawValue)", "position": "\(position)"]) }
            if notify {
                send(to: connection) { Answers.queued(&$0, id: context.id, position: position, refusal) }
                outbox.wantsWaitProgress = true
            }
        case .overBound(let bound):
            fail(context, .tooMany, Self.describe(bound))
        case .invalid(let field, let message):
            fail(context, .badRequest, message, field: field)
        }
    }

    /// `heartbeat`: one token, or several answered with `results`.
    func heartbeat(_ tokens: [TokenArgument], multiple: Bool, _ context: RequestContext) {
        if !multiple, case .token(let token) = tokens[0] {
            switch take(broker.heartbeat(token, now: now, sentBy: deadlinesServedAt)) {
            case .success(let lease):
                let validUntil = lease.clusterFence == nil ? nil : validUntilMilliseconds(lease)
                succeed(context) { w in
                    w.key("ttl_ms"); w.int(lease.ttlMilliseconds)
                    if let validUntil { w.key("valid_until_ms"); w.int(validUntil) }
                }
            case .failure(let error): fail(context, error)
            }
            return
        }
        let outcomes = tokens.map { argument -> Result<Lease, LeaseError> in
            guard case .token(let token) = argument else { return .failure(.badRequest(field: "leases", message: "not a token")) }
            return take(broker.heartbeat(token, now: now, sentBy: deadlinesServedAt))
        }
        succeed(context) { w in
            w.key("results")
            w.beginArray()
            for outcome in outcomes {
                w.beginObject()
                switch outcome {
                case .success(let lease):
                    w.key("ok"); w.bool(true)
                    w.key("ttl_ms"); w.int(lease.ttlMilliseconds)
                    if lease.clusterFence != nil, let validUntil = validUntilMilliseconds(lease) {
                        w.key("valid_until_ms"); w.int(validUntil)
                    }
                case .failure(let error):
                    w.key("ok"); w.bool(false)
                    w.key("error")
                    if case .notFound = error { w.string(ErrorCode.notFound.rawValue) } else { w.string(ErrorCode.badRequest.rawValue) }
                }
                w.endObject()
            }
            w.endArray()
        }
    }

    /// `release`: answers how long it was held, and whether its slot waits for its process
    /// group to end (`draining`).
    func release(_ token: LeaseToken, exit: ExitStatus?, _ context: RequestContext) {
        let at = now
        switch take(broker.release(token, exit: exit, now: at)) {
        case .success(let lease):
            succeed(context) {
                $0.key("held_ms"); $0.int(at.milliseconds(since: lease.grantedAt))
                if lease.drain != nil { $0.key("draining"); $0.bool(true) }
            }
        case .failure(let error): fail(context, error)
        }
    }

    /// `attach`: binds the lease to this connection (and optionally a process). A lease holding
    /// shared capacity answers its `cluster_fence` and, under `on_loss = "revoke"`,
    /// `valid_until_ms`, as its acquire did: the new holder must know when to stop.
    func attach(_ token: LeaseToken, pid: Int32?, pgid: Int32?, _ context: RequestContext) {
        if let pid, host.isProcessGone(pid) {
            return fail(context, .badRequest, "pid \(pid) names no live process", field: "pid")
        }
        if let pgid, let refusal = groupRefusal(pgid, for: context.connection) {
            return fail(context, refusal.code, refusal.message, field: "pgid")
        }
        switch take(broker.attach(token, client: context.connection.id, pid: pid, pgid: pgid, now: now)) {
        case .success(let lease):
            succeed(context) { w in
                w.key("fence"); w.int(lease.fence)
                w.key("ttl_ms"); w.int(lease.ttlMilliseconds)
                w.key("model"); w.string(lease.model?.description)
                w.key("route"); w.string(lease.route?.rawValue)
                w.key("parked"); w.bool(lease.parked)
                if let clusterFence = lease.clusterFence {
                    w.key("cluster_fence"); w.int(clusterFence)
                    if let validUntil = validUntilMilliseconds(lease) { w.key("valid_until_ms"); w.int(validUntil) }
                }
            }
        case .failure(let error): fail(context, error)
        }
    }

    /// `cancel`: the named pending request of this connection answers `cancelled`.
    func cancel(_ target: RequestKey, _ context: RequestContext) {
        guard let serial = context.connection.pendingByKey[target],
              take(broker.cancel(Ticket(client: context.connection.id, request: serial), now: now)) else {
            return fail(context, .notFound, "no pending request with that id on this connection")
        }
        succeed(context)
    }

    /// `cancel` with `holder`: the peer's waiting acquires with that holder label, on any of
    /// its connections (an admin's: anyone's); each is answered `cancelled`.
    func cancel(holder: String, _ context: RequestContext) {
        let mine = context.connection
        var cancelled = 0
        for ticket in broker.waitingTickets(holder: holder) {
            guard let owner = connections[ticket.client], mine.isAdmin || owner.uid == mine.uid else { continue }
            if take(broker.cancel(ticket, now: now)) { cancelled += 1 }
        }
        guard cancelled > 0 else { return fail(context, .notFound, "no waiting acquire of yours is held as \(holder)") }
        succeed(context) { $0.key("cancelled"); $0.int(cancelled) }
    }

    /// `park`: free the capacity, keep the workspace.
    func park(_ token: LeaseToken, _ context: RequestContext) {
        switch take(broker.park(token, now: now)) {
        case .success(let lease): succeed(context) { $0.key("fence"); $0.int(lease.fence) }
        case .failure(let error): fail(context, error)
        }
    }

    /// `unpark`: take capacity back, answered like an acquire.
    func unpark(_ token: LeaseToken, waitMilliseconds: UInt64, notify: Bool, _ context: RequestContext) {
        let connection = context.connection
        let ticket = connection.nextTicket()
        requestInFlight = (ticket, context.id, context.connection)
        switch take(broker.unpark(token, ticket: ticket, waitMilliseconds: waitMilliseconds, now: now)) {
        case .failure(let error): fail(context, error)
        case .success(let outcome): answer(outcome, ticket: ticket, notify: notify, context)
        }
    }

    /// `revoke` (admin): by token or fence.
    func revoke(_ reference: LeaseReference, _ context: RequestContext) {
        let lease: Lease?
        switch reference {
        case .token(let token): lease = try? take(broker.revoke(token, now: now)).get()
        case .fence(let fence): lease = take(broker.revoke(fence: fence, now: now))
        }
        guard let lease else { return fail(context, .notFound, "no live lease with that token or fence") }
        logger.info("revoked", metadata: ["fence": "\(lease.fence)", "by_uid": "\(context.connection.uid)"])
        succeed(context) { $0.key("fence"); $0.int(lease.fence) }
    }
}
