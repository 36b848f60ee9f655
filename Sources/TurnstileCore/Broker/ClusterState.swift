/// One claim of shared units, as the transport sends it to etcd (protocol/CLUSTER.md §3.2):
/// the broker has reserved every local limit for it and waits for the outcome. Its units are
/// taken all together or not at all.
public struct ClaimRequest: Sendable, Equatable {
    /// The fence of the lease the units are for (a lease to be, or a parked lease unparking):
    /// the transport writes it into the slots (`{host, fence}`), reads them back when the
    /// outcome is unknown, and reports the outcome by it.
    public let fence: UInt64
    /// One unit of each shared limit the grant needs (`slots/<kind>/<name>/<i>`), never empty.
    public let units: [SharedUnit]

    public init(fence: UInt64, units: [SharedUnit]) {
        self.fence = fence
        self.units = units
    }

    /// A claim of one unit of a model pool.
    public init(fence: UInt64, model: ModelKey, limit: Int) {
        self.init(fence: fence, units: [SharedUnit(.model(model), capacity: limit)])
    }
}

/// Shared units given back (protocol/CLUSTER.md §3.5): the transport deletes the slots it
/// claimed for `fence`, if it holds them.
public struct Unclaim: Sendable, Equatable {
    /// The fence their claim was made for.
    public let fence: UInt64
    /// The limits of the units.
    public let limits: [SharedLimit]

    public init(fence: UInt64, limits: [SharedLimit]) {
        self.fence = fence
        self.limits = limits
    }
}

/// What the broker knows of the cluster it shares model capacity with (protocol/CLUSTER.md
/// §3–§5): whether it can be reached, until when this host's units are surely its own, the
/// claims in flight, and the models the cluster had no unit of. The transport reports; the
/// broker decides what each report means for leases and waiters.
struct ClusterState: Sendable {
    /// `on_loss`.
    let onLoss: ClusterConfig.LossPolicy
    var reach = ClusterReach.joining
    /// When `reach` last changed; nil while it has not.
    var since: Instant?
    /// Until when the units this host holds are surely its own (protocol/CLUSTER.md §5); nil
    /// until the transport first says.
    var safeDeadline: Instant?
    /// Claims whose outcome is not known yet, by fence.
    var claims: [UInt64: Claim] = [:]
    /// Limits a claim found with no free unit across the cluster: they count as full until a
    /// unit of them is given back here or the transport sees one freed elsewhere.
    var exhausted: Set<SharedLimit> = []
    /// Counters for `status`.
    var metrics = ClusterMetrics()

    init(onLoss: ClusterConfig.LossPolicy) {
        self.onLoss = onLoss
    }

    /// Whether claims may be made now.
    var isAvailable: Bool { reach == .available }
}

/// Whether shared units can be claimed (`status`'s `cluster.state`).
public enum ClusterReach: String, Sendable, Equatable {
    /// The host lease is not registered yet (the daemon just started).
    case joining
    /// The host lease is held: claims go on.
    case available
    /// A renewal failed: no new shared grant until the cluster is restored.
    case lost
}

/// A request whose local limits are reserved while its model's shared unit is claimed. Its
/// reservation is counted in the broker's occupancy like a lease's, until the outcome is known
/// (protocol/CLUSTER.md §3.4: an unknown outcome never lets a unit be counted twice).
struct Claim: Sendable {
    /// What a successful claim completes.
    enum Purpose: Sendable {
        /// A new lease: this one, not yet in the broker's tables (nobody knows its token).
        case acquire(Lease)
        /// The unpark of the parked lease with the claim's fence.
        case unpark
    }

    /// The request it answers.
    let ticket: Ticket
    let fence: UInt64
    let purpose: Purpose
    /// The dimensions reserved (pool limits in force).
    let request: AdmissionRequest
    /// The model chosen, and how the request came to it; nil for a request without one.
    let candidate: ModelCandidate?
    /// The shared units claimed.
    let units: [SharedUnit]
    /// When the request arrived (its `waited_ms` counts from here).
    let enqueuedAt: Instant
    /// When its `wait_ms` ends; nil for a request that does not wait (`wait_ms` 0): if its
    /// claim fails, it is refused at once instead of queued.
    let waitDeadline: Instant?
    /// When its request is answered `timeout` if the outcome is not known by then: its
    /// `wait_ms`, or for a request that does not wait `Broker.claimPatienceMilliseconds`.
    let answerDeadline: Instant
    /// Whether the transport said the outcome is unknown (it reads the slot back).
    var outcomeUnknown = false
    /// Whether its request was dropped (connection closed, cancelled, wait ended, lease gone,
    /// daemon stopping): the reservation stays until the outcome, and a unit won is given back.
    var abandoned = false

    /// How the request waits if the claim does not end in a grant.
    var waiterKind: Waiter.Kind {
        switch purpose {
        case .acquire(let lease):
            .acquire(ttlMilliseconds: lease.ttlMilliseconds, detach: !lease.bound, pid: lease.pid, pgid: lease.pgid,
                     holder: lease.holder)
        case .unpark: .unpark(fence: fence)
        }
    }

    /// The fence of the lease whose workspace lock it does not contend with (an unpark's own).
    var owner: UInt64? {
        if case .unpark = purpose { fence } else { nil }
    }
}

/// What `status` reports of claims and losses (protocol/CLUSTER.md §6).
public struct ClusterMetrics: Sendable, Equatable {
    /// Claims sent.
    public var claimsTotal: UInt64 = 0
    /// Claims the cluster had no unit for.
    public var claimFailuresTotal: UInt64 = 0
    /// Claims whose outcome the transport reported unknown (it read them back).
    public var unknownOutcomesTotal: UInt64 = 0
    /// Times the cluster was lost.
    public var lossesTotal: UInt64 = 0
    /// Leases revoked because the cluster was lost (`on_loss = "revoke"`).
    public var revokedTotal: UInt64 = 0

    public init() {}
}
