/// A picture of the broker at one instant: what `status` answers (protocol/PROTOCOL.md). It holds no
/// tokens: status is for operators and dashboards, and a token is a capability.
public struct BrokerStatus: Sendable, Equatable {
    /// The global limit.
    public struct Global: Sendable, Equatable {
        public var limit: Int
        public var inUse: Int
        public var waiting: Int
    }

    /// One mode's use; `limit` nil for unquoted modes, `share` only under proportional.
    public struct ModeUse: Sendable, Equatable {
        public var mode: Mode
        public var limit: Int?
        public var inUse: Int
        public var share: Int?
    }

    /// One project's use and controls.
    public struct ProjectUse: Sendable, Equatable {
        public var name: String
        public var limit: Int?
        public var mentionLimit: Int?
        public var inUse: Int
        public var mentionInUse: Int
        public var paused: Bool
        public var failures: Int
    }

    /// One model pool.
    public struct ModelUse: Sendable, Equatable {
        public var model: ModelKey
        public var limit: Int
        public var inUse: Int
        public var tier: CostTier
        public var tools: Bool
        /// Milliseconds left on a subscription-limit flag, if flagged.
        public var limitedForMilliseconds: UInt64?
    }

    /// One named pool: configured, or ad hoc while units of it are held.
    public struct PoolUse: Sendable, Equatable {
        public var name: String
        public var limit: Int
        public var inUse: Int
        /// Waiters whose reason is this pool (the first full one they name).
        public var waiting: Int
        /// Whether an acquire's `pool_limits` defined it (it is forgotten when empty).
        public var adHoc: Bool
    }

    /// A locked workspace.
    public struct WorkspaceLock: Sendable, Equatable {
        public var path: String
        public var fence: UInt64
        public var parked: Bool
    }

    /// A throttle in force.
    public struct Throttle: Sendable, Equatable {
        public var provider: String
        public var tenant: String
        public var remainingMilliseconds: UInt64
    }

    /// A live lease, without its token.
    public struct LeaseInfo: Sendable, Equatable {
        public var fence: UInt64
        public var project: String
        public var mode: Mode
        public var model: ModelKey?
        public var route: Route?
        public var workspace: String?
        public var tenant: String
        public var holder: String?
        public var pid: Int32?
        public var ageMilliseconds: UInt64
        public var sinceHeartbeatMilliseconds: UInt64
        public var expiresInMilliseconds: UInt64
        public var bound: Bool
        public var parked: Bool
        /// The process group whose members keep its slot after it ends.
        public var pgid: Int32?
        /// What ended it, while its process group still runs (its slot is still taken).
        public var draining: LeaseEndCause?
        /// How long it has been draining.
        public var drainingMilliseconds: UInt64?
        /// The pools it holds a unit of.
        public var pools: [String] = []
        /// The fleet-wide fence of the shared unit it holds (protocol/CLUSTER.md §6).
        public var clusterFence: UInt64?
    }

    /// The cluster model capacity is shared with (protocol/CLUSTER.md §6).
    public struct ClusterUse: Sendable, Equatable {
        /// This host's name (nil: the machine's hostname) and the etcd endpoints, as configured.
        public var host: String?
        public var endpoints: [String]
        public var state: ClusterReach
        public var onLoss: ClusterConfig.LossPolicy
        /// How long ago the state last changed; nil if it has not since the start.
        public var sinceMilliseconds: UInt64?
        /// How long the units held are surely this host's (0 once the safe deadline passed);
        /// nil until the transport first says.
        public var validForMilliseconds: UInt64?
        /// Claims in flight, and of them those whose outcome is being read back.
        public var claiming: Int
        public var outcomeUnknown: Int
        /// Shared limits a claim found with no free unit across the cluster.
        public var exhausted: [SharedLimit]
        public var metrics: ClusterMetrics
    }

    /// A waiting request.
    public struct WaiterInfo: Sendable, Equatable {
        public var project: String
        public var mode: Mode
        public var model: ModelKey?
        public var workspace: String?
        public var holder: String?
        public var priority: Int
        public var reason: BlockReason
        public var waitedMilliseconds: UInt64
        public var position: Int
        public var unpark: Bool
        /// The pool that blocks it, when its reason is `pool`.
        public var pool: String?
    }

    public var fairness: FairnessPolicy
    public var global: Global
    public var modes: [ModeUse]
    public var projects: [ProjectUse]
    public var models: [ModelUse]
    public var pools: [PoolUse] = []
    public var workspaces: [WorkspaceLock]
    public var throttles: [Throttle]
    public var leases: [LeaseInfo]
    public var waiting: [WaiterInfo]
    public var metrics: BrokerMetrics
    /// Waiters per current blocking reason.
    public var queuedByReason: [BlockReason: Int]
    /// The cluster, when model capacity is shared across hosts.
    public var cluster: ClusterUse?
}
