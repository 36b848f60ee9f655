@testable import TurnstileCore

/// A broker with a hand-driven clock, as every core test uses it: time only moves when a test
/// says so, tokens come from a seeded generator, and invariants are checked after each step.
struct Harness {
    var broker: Broker
    var now = Instant(milliseconds: 1_000_000)
    var wall = WallTime(unixMilliseconds: 1_790_000_000_000)
    private var serial: UInt64 = 0

    init(seed: UInt64 = 1, _ configure: (inout TurnstileConfig) -> Void = { _ in }) {
        var config = TurnstileConfig()
        configure(&config)
        broker = Broker(config: config, random: SplitMix64(seed: seed))
    }

    /// A fresh ticket for a client.
    mutating func ticket(_ client: UInt64 = 1) -> Ticket {
        serial += 1
        return Ticket(client: ClientID(client), request: serial)
    }

    /// Acquires with the given dimensions from `client`.
    @discardableResult
    mutating func acquire(project: String = Names.globalProject, mode: Mode = .any, model: String? = nil,
                          fallback: [String] = [], providers: [String] = [], workspace: String? = nil,
                          tenant: String = "local", priority: Int = 0, wait: UInt64 = 0, ttl: UInt64? = nil,
                          detach: Bool = false, pid: Int32? = nil, holder: String? = nil,
                          client: UInt64 = 1) -> AcquireOutcome {
        let request = AcquireRequest(
            AdmissionRequest(project: project, mode: mode, model: model.flatMap { ModelKey(parsing: $0) },
                             fallback: ModelKey.parseChain(fallback), providers: providers,
                             workspace: workspace.flatMap(Names.normaliseWorkspace), tenant: tenant, priority: priority),
            waitMilliseconds: wait, ttlMilliseconds: ttl, detach: detach, pid: pid, holder: holder)
        return decide(request, ticket: ticket(client))
    }

    /// An acquire's decision. A grant at once is answered by its own `granted` effect, which
    /// is set aside here: the effects the tests read are the rest (grants from the queue,
    /// leases created and ended).
    mutating func decide(_ request: AcquireRequest, ticket t: Ticket) -> AcquireOutcome {
        let outcome = broker.decideAcquire(request, ticket: t, now: now)
        if case .granted = outcome, case .granted(t, _)? = broker.effects.last { broker.effects.removeLast() }
        return outcome
    }

    /// Acquires and returns the lease, or nil if not granted at once.
    mutating func grant(project: String = Names.globalProject, mode: Mode = .any, model: String? = nil,
                        fallback: [String] = [], workspace: String? = nil, tenant: String = "local",
                        ttl: UInt64? = nil, detach: Bool = false, pid: Int32? = nil, client: UInt64 = 1) -> Lease? {
        if case .granted(let lease) = acquire(project: project, mode: mode, model: model, fallback: fallback,
                                              workspace: workspace, tenant: tenant, ttl: ttl, detach: detach,
                                              pid: pid, client: client) {
            return lease
        }
        return nil
    }

    /// Moves the clock and serves deadlines.
    mutating func advance(_ milliseconds: UInt64) {
        now = now.adding(milliseconds: milliseconds)
        wall = wall.adding(milliseconds: Int64(milliseconds))
        broker.decideTick(now: now)
    }

    /// Drains the broker's effects.
    mutating func effects() -> [Effect] { broker.drainEffects() }

    /// Tickets granted among the drained effects, in order.
    mutating func grantedTickets() -> [Ticket] {
        effects().compactMap { if case .granted(let ticket, _) = $0 { ticket } else { nil } }
    }

    /// Invariant violations now (empty when all holds).
    func violations() -> [String] { broker.invariantViolations(now: now) }

    /// Releases a lease.
    @discardableResult
    mutating func release(_ lease: Lease) -> Bool {
        if case .success = broker.decideRelease(lease.token, now: now) { return true }
        return false
    }
}

extension AcquireOutcome {
    /// The lease if granted.
    var lease: Lease? { if case .granted(let lease) = self { lease } else { nil } }
    /// The refusal if refused or queued.
    var refusal: Refusal? {
        switch self {
        case .granted, .claiming, .overBound, .invalid: nil
        case .refused(let refusal): refusal
        case .queued(_, let refusal): refusal
        }
    }
    /// Whether it is waiting.
    var isQueued: Bool { if case .queued = self { true } else { false } }
}
