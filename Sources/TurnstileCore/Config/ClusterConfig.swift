/// Limits shared with other hosts through etcd (`[cluster]`, protocol/CLUSTER.md §1).
///
/// It exists so that a fleet of daemons can count some limits together instead of each host
/// counting its own. Absent (`TurnstileConfig.cluster` nil), nothing changes: every limit is the
/// host's. The broker claims units of the `models`, `projects` and `pools` kinds per lease; the
/// daemon mirrors throttles, subscription flags and pauses.
public struct ClusterConfig: Sendable, Equatable {
    /// The etcd members' client URLs (`endpoints`), at least one.
    public var endpoints: [String]
    /// The key prefix all of this fleet's keys live under (`prefix`), so several fleets may
    /// share one etcd.
    public var prefix: String
    /// This host's name in the fleet (`host`); nil: the machine's hostname, which the daemon
    /// reads (the core reads nothing).
    public var host: String?
    /// The ttl of the host lease (`lease_ttl_ms`), renewed every third of it; its expiry frees
    /// every unit this host held (protocol/CLUSTER.md §5).
    public var leaseTTLMilliseconds: UInt64
    /// The kinds of limit counted across the fleet (`shared`).
    public var shared: Set<SharedKind>
    /// What happens to leases holding shared capacity when the cluster is lost (`on_loss`).
    public var onLoss: LossPolicy
    /// For `https://` endpoints: the CAs that sign the members' certificates (`ca_file`; nil:
    /// the system's), and this host's client certificate and key (`cert_file`, `key_file`), PEM
    /// files the daemon reads at start.
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?

    public init(endpoints: [String], prefix: String = ClusterConfig.defaultPrefix, host: String? = nil,
                leaseTTLMilliseconds: UInt64 = ClusterConfig.defaultLeaseTTLMilliseconds,
                shared: Set<SharedKind>, onLoss: LossPolicy = .revoke) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.host = host
        self.leaseTTLMilliseconds = leaseTTLMilliseconds
        self.shared = shared
        self.onLoss = onLoss
    }

    /// A kind of limit that may be shared (protocol/CLUSTER.md §1 and §2).
    public enum SharedKind: String, Sendable, Equatable, Hashable, CaseIterable {
        /// Model pools' concurrency limits (`provider/model`): claimed unit by unit.
        case models
        /// Provider throttles.
        case throttles
        /// Subscription-limit flags.
        case subscriptionLimits = "subscription_limits"
        /// Project caps.
        case projects
        /// Project pauses.
        case pauses
        /// Named pools.
        case pools

    }

    /// What a host does with leases holding shared capacity once its cluster is lost
    /// (protocol/CLUSTER.md §5).
    public enum LossPolicy: String, Sendable, Equatable {
        /// Revoke them before the safe deadline: no host holds a unit the fleet may have given
        /// to another. Their answers carry `valid_until_ms`.
        case revoke
        /// Let running work keep them; no new shared grant until the cluster returns.
        case keep
    }

    /// The prefix when none is given.
    public static let defaultPrefix = "/turnstile/"
    /// The host lease's ttl when none is given (protocol/CLUSTER.md §1).
    public static let defaultLeaseTTLMilliseconds: UInt64 = 5_000
    /// `lease_ttl_ms` bounds: etcd grants lease ttls in whole seconds, the shortest 2 s with
    /// the test cluster's timings (protocol/CLUSTER.md §1), and a host
    /// lease longer than an hour would keep a dead host's units from the fleet for as long.
    public static let leaseTTLRange: ClosedRange<UInt64> = 2_000...3_600_000
    /// Most endpoints: far beyond any etcd cluster (a cluster has an odd handful of members).
    public static let endpointsMax = 64
    /// Longest endpoint, prefix or host, in bytes: keys stay far below etcd's request limit.
    public static let textMaxBytes = 1_024

    /// Whether the members are reached over TLS (`https://` endpoints; the config takes all or none).
    public var usesTLS: Bool { endpoints.first?.hasPrefix("https://") ?? false }
}
