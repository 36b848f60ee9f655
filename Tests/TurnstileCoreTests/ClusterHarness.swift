@testable import TurnstileCore

/// A `Harness` whose broker shares model capacity across hosts (protocol/CLUSTER.md): `[cluster]`
/// shares `models` and the cluster is reachable, its units safe for `safeFor` ms. Held by
/// reference, so that a test can call the broker's operations inside `#expect`. Two pools that
/// are not each other's capability fallback: `p/a` (premium, limit 2) and `q/b` (cheap, limit 2).
final class SharedModelsHarness {
    var h: Harness

    init(onLoss: ClusterConfig.LossPolicy = .revoke, safeFor: UInt64 = 4_000, joined: Bool = true,
         shared: Set<ClusterConfig.SharedKind> = [.models], _ configure: (inout TurnstileConfig) -> Void = { _ in }) {
        h = Harness { config in
            config.cluster = ClusterConfig(endpoints: ["http://127.0.0.1:2379"], shared: shared, onLoss: onLoss)
            config.providers = [ProviderConfig(name: "p", models: ["a"]), ProviderConfig(name: "q", models: ["b"])]
            config.models = [ModelConfig(name: "p/a", concurrencyLimit: 2, tier: .premium),
                             ModelConfig(name: "q/b", concurrencyLimit: 2, tier: .cheap)]
            configure(&config)
        }
        guard joined else { return }
        let restored = h.broker.decideClusterRestored(safeDeadline: h.now.adding(milliseconds: safeFor), now: h.now)
        precondition(restored && h.effects().isEmpty, "joining the cluster grants nothing and says nothing")
    }

    var broker: Broker {
        get { h.broker }
        set { h.broker = newValue }
    }

    var now: Instant {
        get { h.now }
        set { h.now = newValue }
    }

    func ticket(_ client: UInt64 = 1) -> Ticket { h.ticket(client) }
    func decide(_ request: AcquireRequest, ticket: Ticket) -> AcquireOutcome { h.decide(request, ticket: ticket) }
    func effects() -> [Effect] { h.effects() }
    func advance(_ milliseconds: UInt64) { h.advance(milliseconds) }
    func violations() -> [String] { h.violations() }
    func release(_ lease: Lease) -> Bool { h.release(lease) }

    func acquire(project: String = Names.globalProject, model: String? = nil, workspace: String? = nil,
                 wait: UInt64 = 0, client: UInt64 = 1) -> AcquireOutcome {
        h.acquire(project: project, model: model, workspace: workspace, wait: wait, client: client)
    }

    func grant(project: String = Names.globalProject, client: UInt64 = 1) -> Lease? {
        h.grant(project: project, client: client)
    }

    // The broker's operations, at the harness's clock.
    func claimSucceeded(fence: UInt64, clusterFence: UInt64) -> Bool {
        h.broker.decideClaimSucceeded(fence: fence, clusterFence: clusterFence, now: h.now)
    }
    /// The cluster had no unit of `full`; nil: of the claim's first limit (its model, in these tests).
    func claimFailed(fence: UInt64, full: SharedLimit? = nil) -> Bool {
        let limit = full ?? h.broker.cluster?.claims[fence]?.units.first?.limit ?? .model(Self.key("none/none"))
        return h.broker.decideClaimFailed(fence: fence, full: limit, now: h.now)
    }
    func claimNotApplied(fence: UInt64) -> Bool { h.broker.decideClaimNotApplied(fence: fence, now: h.now) }
    func claimOutcomeUnknown(fence: UInt64) -> Bool { h.broker.decideClaimOutcomeUnknown(fence: fence) }
    func sharedCapacityFreed(_ model: ModelKey) -> Bool { h.broker.decideSharedCapacityFreed(.model(model), now: h.now) }
    func sharedCapacityFreed(_ limit: SharedLimit) -> Bool { h.broker.decideSharedCapacityFreed(limit, now: h.now) }
    func clusterLost(safeDeadline: Instant) -> Bool { h.broker.decideClusterLost(safeDeadline: safeDeadline, now: h.now) }
    func clusterRestored(safeDeadline: Instant) -> Bool {
        h.broker.decideClusterRestored(safeDeadline: safeDeadline, now: h.now)
    }
    func clusterRenewed(safeDeadline: Instant) -> Bool { h.broker.clusterRenewed(safeDeadline: safeDeadline).reply }
    func withdrawGrant(fence: UInt64, isNew: Bool) -> Bool {
        h.broker.decideWithdrawGrant(fence: fence, isNew: isNew, now: h.now)
    }
    func unpark(_ token: LeaseToken, ticket: Ticket, wait: UInt64 = 0) -> Result<AcquireOutcome, LeaseError> {
        h.broker.decideUnpark(token, ticket: ticket, waitMilliseconds: wait, now: h.now)
    }
    func cancel(_ ticket: Ticket) -> Bool { h.broker.decideCancel(ticket, now: h.now) }

    /// An acquire of a shared model whose claim the cluster grants at once: the lease it got.
    func claimedGrant(model: String = "p/a", ttl: UInt64? = nil, clusterFence: UInt64) -> Lease? {
        guard case .claiming = h.acquire(model: model, ttl: ttl),
              let claim = Self.claims(in: h.effects()).first else { return nil }
        _ = claimSucceeded(fence: claim.fence, clusterFence: clusterFence)
        return Self.grants(in: h.effects()).first?.lease
    }

    /// An acquire request of a model.
    static func request(_ model: String = "p/a", project: String = Names.globalProject, fallback: [String] = [],
                        workspace: String? = nil, wait: UInt64 = 0) -> AcquireRequest {
        AcquireRequest(AdmissionRequest(project: project, model: key(model), fallback: ModelKey.parseChain(fallback),
                                        workspace: workspace),
                       waitMilliseconds: wait)
    }

    /// The claims among effects, in order.
    static func claims(in effects: [Effect]) -> [ClaimRequest] {
        effects.compactMap { if case .claim(_, let claim) = $0 { claim } else { nil } }
    }

    /// The units given back among effects, in order.
    static func unclaims(in effects: [Effect]) -> [Unclaim] {
        effects.compactMap { if case .unclaim(let unit) = $0 { unit } else { nil } }
    }

    /// The failures among effects, by ticket.
    static func failures(in effects: [Effect]) -> [Ticket: WaitFailure] {
        Dictionary(effects.compactMap { if case .failed(let ticket, let failure) = $0 { (ticket, failure) } else { nil } },
                   uniquingKeysWith: { first, _ in first })
    }

    /// The grants among effects, in order.
    static func grants(in effects: [Effect]) -> [(ticket: Ticket, lease: Lease)] {
        effects.compactMap { if case .granted(let ticket, let lease) = $0 { (ticket, lease) } else { nil } }
    }

    /// A model key from its text.
    static func key(_ text: String) -> ModelKey { ModelKey(parsing: text)! }
}

extension AcquireOutcome {
    /// Whether it is claiming a shared unit.
    var isClaiming: Bool { if case .claiming = self { true } else { false } }
}

extension ClaimRequest {
    /// The model of a claim made for a model alone (these tests' claims).
    var model: ModelKey {
        guard case .model(let model) = units[0].limit else { preconditionFailure("not a model claim: \(units)") }
        return model
    }

    /// Its model pool's limit.
    var limit: Int { units[0].capacity }

    /// The model it claims a unit of, if any.
    var claimedModel: ModelKey? {
        units.lazy.compactMap { if case .model(let model) = $0.limit { model } else { nil } }.first
    }
}
