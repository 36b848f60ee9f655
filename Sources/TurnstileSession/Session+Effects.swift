import Logging
import TurnstileCore
import TurnstileProtocol

extension Session {
    /// Takes a broker transition: its effects wait for `processEffects`, its reply is returned.
    /// A request's own answer is written from the reply before its effects are carried out, so
    /// a connection hears the answer to what it asked before the events it caused.
    @discardableResult
    func take<Reply>(_ transition: consuming Transition<Reply>) -> Reply {
        if !transition.effects.isEmpty {
            if queuedEffects.isEmpty { queuedEffects = transition.effects } else { queuedEffects += transition.effects }
        }
        return transition.reply
    }

    /// Carries out a transition the transport got from the broker itself (the restore at start).
    public func carryOut<Reply>(_ transition: Transition<Reply>) {
        _ = take(transition)
        processEffects()
    }

    /// Turns the taken effects into output: answers to waiting requests, events to holders
    /// and watchers, journal records, process watches, pause flag files, the trip hook. Loops
    /// until none is left. Not re-entered: an effect that feeds the broker again (an answer
    /// that closes a half-closed connection, whose leases end) adds effects the running loop
    /// takes next, in order.
    func processEffects() {
        guard !processingEffects else { return }
        processingEffects = true
        defer { processingEffects = false }
        while !queuedEffects.isEmpty {
            effectsBuffer.removeAll(keepingCapacity: true)
            swap(&effectsBuffer, &queuedEffects)
            // Through the buffer's storage: each effect is borrowed, not copied (an array's
            // iterator copies every element, and a lease is a dozen fields).
            effectsBuffer.withUnsafeBufferPointer { effects in
                for index in effects.indices { apply(effects[index]) }
            }
            broker.recycle(&effectsBuffer)
        }
    }

    private func apply(_ effect: Effect) {
        switch effect {
        case .granted(let ticket, let lease):
            if let current = requestInFlight, current.ticket == ticket {
                // Granted at once: the request being handled.
                requestInFlight = nil
                return sendGrant(to: current.connection, id: current.id, lease)
            }
            guard let connection = connections[ticket.client], let pending = connection.forget(ticket.request) else { return }
            sendGrant(to: connection, id: pending.id.map { ArraySlice($0) }, lease)
            closeIfDone(connection)
        case .failed(let ticket, let failure):
            answer(ticket) { id in { w in Self.writeFailure(&w, id: id, failure) } }
        case .leaseGranted(let lease):
            outbox.journal.grant(lease)
            if debugLogging { logger.debug("granted", metadata: leaseMetadata(lease)) }
            broadcastGrant(lease)
        case .leaseEnded(let lease, let cause):
            leaseEnded(lease, cause)
        case .leaseDraining(let lease):
            leaseDraining(lease)
        case .leaseChanged(let lease):
            outbox.journal.change(lease)
        case .watchProcess(let pid):
            outbox.commands.append(.watchProcess(pid))
        case .unwatchProcess(let pid):
            outbox.commands.append(.unwatchProcess(pid))
        case .paused(let project):
            if let problem = host.createPauseFlag(project) { logger.error("\(problem)") }
            broadcast { Answers.watchProject(&$0, name: "paused", project: project) }
        case .resumed(let project):
            if let problem = host.removePauseFlag(project) { logger.error("\(problem)") }
            broadcast { Answers.watchProject(&$0, name: "resumed", project: project) }
        case .tripped(let project, let failures):
            logger.error("circuit breaker tripped: project paused", metadata: ["project": "\(project)", "failures": "\(failures)"])
            outbox.commands.append(.runTripHook(project: project, failures: failures))
            broadcast { Answers.watchTripped(&$0, project: project, failures: failures) }
        case .throttled(let provider, let tenant, let retryAfter):
            outbox.journal.throttle(tenant: tenant, provider: provider,
                                    until: wall.adding(milliseconds: Int64(clamping: retryAfter)))
            publish(.throttle(tenant: tenant, provider: provider, milliseconds: retryAfter), kind: .throttles)
            broadcast { Answers.watchThrottled(&$0, provider: provider, tenant: tenant, retryAfterMilliseconds: retryAfter) }
        case .throttleCleared(let provider, let tenant):
            outbox.journal.unthrottle(tenant: tenant, provider: provider)
            publish(.clearThrottle(tenant: tenant, provider: provider), kind: .throttles)
            broadcast { Answers.watchThrottleCleared(&$0, provider: provider, tenant: tenant) }
        case .flagged(let model, let milliseconds):
            publish(.flag(model: model, milliseconds: milliseconds), kind: .subscriptionLimits)
        case .unflagged(let model):
            outbox.journal.unflag(model: model)
            publish(.unflag(model: model), kind: .subscriptionLimits)
            broadcast { Answers.watchUnflagged(&$0, model: model) }
        case .claim(let ticket, let claim):
            if debugLogging {
                logger.debug("claiming", metadata: ["fence": "\(claim.fence)", "units": "\(claim.units.map(\.limit.description))", "client": "\(ticket.client)"])
            }
            outbox.claims.append(claim)
        case .unclaim(let unit):
            outbox.unclaims.append(unit)
        case .clusterLost(let deadline):
            let remaining = deadline.milliseconds(since: now)
            logger.error("cluster lost: no new grant of shared capacity until it is back",
                         metadata: ["deadline_ms": "\(remaining)"])
            broadcast { Answers.watchClusterLost(&$0, deadlineMilliseconds: remaining) }
            // Groups already draining with a shared unit must be gone by the deadline too.
            for group in broker.drainingGroupsKilledBy {
                outbox.commands.append(.drainGroup(group.pgid, killBy: group.killBy))
            }
        case .clusterRestored:
            logger.notice("cluster restored: grants of shared capacity resume")
            broadcast { Answers.watchClusterRestored(&$0) }
        }
    }

    private func leaseEnded(_ lease: Lease, _ cause: LeaseEndCause) {
        outbox.journal.end(fence: lease.fence)
        let drainedMilliseconds = lease.drain.map { now.milliseconds(since: $0.since) }
        if cause == .drained {
            var metadata = leaseMetadata(lease)
            metadata["ended_by"] = "\(lease.drain?.cause.rawValue ?? "")"
            metadata["drained_ms"] = "\(drainedMilliseconds ?? 0)"
            logger.info("process group gone: slot free", metadata: metadata)
        } else if debugLogging {
            logger.debug("lease ended", metadata: endMetadata(lease, cause))
        }
        let name = Self.eventName(cause)
        notifyHolder(lease, cause)
        broadcast { Answers.watchLease(&$0, name: name, lease, cause: cause, drainedMilliseconds: drainedMilliseconds) }
    }

    /// A lease ended while its process group runs: journal it as draining, tell its holder as
    /// for any end, and have the group stopped and watched until it is gone.
    private func leaseDraining(_ lease: Lease) {
        guard let drain = lease.drain, let pgid = lease.pgid else { return }
        outbox.journal.change(lease)
        logger.info("lease ended while its process group runs: draining", metadata: endMetadata(lease, drain.cause))
        notifyHolder(lease, drain.cause)
        broadcast { Answers.watchLease(&$0, name: "draining", lease, cause: drain.cause) }
        outbox.commands.append(.drainGroup(pgid, killBy: broker.groupKillDeadline(lease)))
    }

    /// The watch event name of a lease end.
    private static func eventName(_ cause: LeaseEndCause) -> String {
        switch cause {
        case .expired: "expired"
        case .revoked: "revoked"
        case .released, .disconnected, .processExited, .drained: "released"
        }
    }

    /// Sends an expired or revoked lease's holder its event (protocol/PROTOCOL.md §9.2).
    private func notifyHolder(_ lease: Lease, _ cause: LeaseEndCause) {
        guard cause == .expired || cause == .revoked, let client = lease.client, let connection = connections[client]
        else { return }
        send(to: connection) { Answers.leaseEvent(&$0, name: Self.eventName(cause), lease) }
    }

    private func endMetadata(_ lease: Lease, _ cause: LeaseEndCause) -> Logger.Metadata {
        var metadata = leaseMetadata(lease)
        metadata["cause"] = "\(cause.rawValue)"
        switch lease.exit {
        case .code(let code)?: metadata["exit_code"] = "\(code)"
        case .signal(let signal)?: metadata["signal"] = "\(signal)"
        case nil: break
        }
        if let pgid = lease.pgid { metadata["pgid"] = "\(pgid)" }
        return metadata
    }

    /// Answers a waiting request, if its connection is still there.
    private func answer(_ ticket: Ticket, _ makeWriter: (ArraySlice<UInt8>?) -> (inout JSONWriter) -> Void) {
        guard let connection = connections[ticket.client], let pending = connection.forget(ticket.request) else { return }
        let id = pending.id.map { ArraySlice($0) }
        send(to: connection, makeWriter(id))
        closeIfDone(connection)
    }

    private static func writeFailure(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, _ failure: WaitFailure) {
        switch failure {
        case .timeout(let refusal):
            Answers.failure(&w, id: id, code: .timeout, message: "no permit within wait_ms: \(refusal.detail)", refusal: refusal)
        case .cancelled: Answers.failure(&w, id: id, code: .cancelled, message: "cancelled")
        case .shuttingDown: Answers.failure(&w, id: id, code: .shuttingDown, message: "turnstiled is stopping")
        case .leaseGone: Answers.failure(&w, id: id, code: .notFound, message: "the lease ended while its unpark waited")
        case .refused(let refusal): Answers.refused(&w, id: id, refusal)
        }
    }

    /// Sends an event to every watcher.
    private func broadcast(_ write: (inout JSONWriter) -> Void) {
        guard !watchers.isEmpty else { return }
        for connection in watchers.values { send(to: connection, write) }
    }

    private func leaseMetadata(_ lease: Lease) -> [String: Logger.MetadataValue] {
        ["fence": "\(lease.fence)", "project": "\(lease.request.project)", "mode": "\(lease.request.mode.rawValue)",
         "model": "\(lease.model?.description ?? "-")", "holder": "\(lease.holder ?? "-")"]
    }
}
