import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// Applies the requests a fuzz input decodes to to a real broker, as the daemon would, so that
/// the fuzzer reaches every sum, product and date the core computes from client input (token
/// and cost sums, throttle delays, fair shares, telemetry bounds), not just the codec.
///
/// Everything is deterministic: a fake clock that each line moves on by an amount the line's
/// bytes choose (sometimes without serving deadlines, as a late timer would), tokens from a
/// seeded generator, and a small config chosen by the input's first byte. Lease tokens in
/// requests are mapped onto live leases so that heartbeats, releases and parks find one. After
/// each call the broker's invariants must hold, and every answer must encode.
struct BrokerDriver {
    private var broker: Broker
    private var now = Instant(milliseconds: 1_000)
    private var wall = WallTime(unixMilliseconds: 1_790_000_000_000)
    private var live: [LeaseToken] = []
    /// The effects of the request being applied.
    private var effects: [Effect] = []
    private var serial: UInt64 = 0
    private let config: TurnstileConfig

    /// A broker with a small config chosen by `seed`: low limits, so that requests wait and
    /// dispatch runs, and small telemetry bounds, so that evictions happen.
    init(seed: UInt8) {
        var config = TurnstileConfig()
        config.limits.global = Int(seed % 5)
        config.limits.time = Int(seed / 5 % 3)
        config.limits.issue = Int(seed / 15 % 3)
        config.limits.fairness = [FairnessPolicy.roundRobin, .priority, .proportional][Int(seed / 45 % 3)]
        config.limits.priorityAgingMilliseconds = UInt64(seed % 3) * 500
        config.projects = [ProjectConfig(name: "a", max: 1, maxMention: 1)]
        config.providers = [ProviderConfig(name: "p1", models: ["x", "y"]), ProviderConfig(name: "cli", kind: .cli, models: ["w"])]
        config.models = [ModelConfig(name: "x", concurrencyLimit: 1)]
        config.telemetry.subscriptionLimitTTLSeconds = 2
        config.telemetry.bounds = Telemetry.Bounds(models: 3, eventsPerModel: 4, sessions: 3)
        self.config = config
        broker = Broker(config: config, random: SplitMix64(seed: UInt64(seed)))
        broker.assertsInvariants = false
        // Even process groups "run": leases bound to them drain; the clock's steps end them.
        broker.processGroupAlive = { $0 % 2 == 0 }
    }

    /// Moves the clock on by what the line's first and last bytes choose, serving deadlines
    /// unless the line asks for a late timer, then applies the request.
    mutating func apply(_ request: Request, line: UnsafeBufferPointer<UInt8>) {
        let step = UInt64(line.first ?? 0) * 13 + UInt64(line.last ?? 0)
        now = now.adding(milliseconds: step)
        wall = wall.adding(milliseconds: Int64(step))
        if step % 3 != 0 { note(broker.tick(now: now)) }
        if step % 5 == 0 { note(broker.processGroupEnded(Int32(truncatingIfNeeded: step % 8), now: now)) }
        serial += 1
        let ticket = Ticket(client: ClientID(serial % 3), request: serial)
        perform(request, ticket: ticket)
        defer { effects.removeAll() }
        for effect in effects {
            switch effect {
            case .leaseGranted(let lease): live.append(lease.token)
            case .leaseEnded(let lease, _), .leaseDraining(let lease): live.removeAll { $0 == lease.token }
            default: break
            }
        }
        let problems = broker.invariantViolations(now: now)
        if !problems.isEmpty { fatalError("broker invariants after \(request): \(problems)") }
    }

    /// Keeps a transition's effects for the bookkeeping after the request.
    private mutating func note<Reply>(_ transition: Transition<Reply>) {
        effects += transition.effects
    }

    /// A live lease chosen by the request's token, or the token itself when none lives.
    private func lease(_ token: LeaseToken) -> LeaseToken {
        live.isEmpty ? token : live[Int(token.low % UInt64(live.count))]
    }

    private mutating func perform(_ request: Request, ticket: Ticket) {
        var w = JSONWriter()
        switch request {
        case .hello, .watch: note(broker.tick(now: now))
        case .acquire(let acquire, _): note(broker.acquire(acquire, ticket: ticket, now: now))
        case .heartbeat(let tokens, _):
            for case .token(let token) in tokens { note(broker.heartbeat(lease(token), now: now)) }
        case .release(let token, let exit): note(broker.release(lease(token), exit: exit, now: now))
        case .attach(let token, let pid, let pgid):
            note(broker.attach(lease(token), client: ticket.client, pid: pid, pgid: pgid, now: now))
        case .cancel: note(broker.cancel(Ticket(client: ticket.client, request: serial - 1), now: now))
        case .cancelHolder(let holder):
            for waiting in broker.waitingTickets(holder: holder) { note(broker.cancel(waiting, now: now)) }
        case .status, .metrics:
            note(broker.tick(now: now))
            StatusEncoding.write(&w, id: nil, broker.status(now: now),
                                 server: ServerInfo(version: "fuzz", pid: 1, uptimeMilliseconds: 0, connections: 1, watchers: 0))
        case .pause(let project): note(broker.pause(project, now: now))
        case .resume(let project): note(broker.resume(project, now: now))
        case .report(let project, let agent, let success):
            note(broker.report(project: project, agent: agent, success: success, now: now))
        case .throttle(let provider, let tenant, let retryAfter):
            guard let delay = retryAfter.delayMilliseconds(wall: wall) else { return note(broker.tick(now: now)) }
            note(broker.throttle(provider: provider, tenant: tenant, retryAfterMilliseconds: delay, now: now))
        case .clearThrottle(let provider, let tenant): note(broker.clearThrottle(provider: provider, tenant: tenant, now: now))
        case .unflag(let model): note(broker.unflag(model: model, now: now, wall: wall))
        case .record(let event):
            var stamped = event
            stamped.completedAt = wall
            note(broker.record(stamped, now: now))
        case .performance(let model):
            note(broker.tick(now: now))
            TelemetryEncoding.performance(&w, id: nil, broker.performance(model: model, wall: wall))
        case .usage(let session):
            note(broker.tick(now: now))
            TelemetryEncoding.usage(&w, id: nil, broker.usage(session: session, wall: wall))
        case .reload:
            var changed = config
            changed.limits.global = Int(serial % 4)
            note(broker.reload(changed, now: now))
        case .park(let token): note(broker.park(lease(token), now: now))
        case .unpark(let token, let wait, _):
            note(broker.unpark(lease(token), ticket: ticket, waitMilliseconds: wait, now: now))
        case .revoke(.token(let token)): note(broker.revoke(lease(token), now: now))
        case .revoke(.fence(let fence)): note(broker.revoke(fence: fence, now: now))
        }
    }
}
