/// The whole configuration of a Turnstile daemon (README, "Configuration"), every key optional.
///
/// The core owns the type and its validation so that both the daemon (at start and on
/// reload) and the tests build it the same way; the daemon only reads the file.
public struct TurnstileConfig: Sendable, Equatable {
    /// Socket path (`socket`); nil: the daemon's default.
    public var socketPath: String?
    /// State directory (`state_dir`); nil: the daemon's default.
    public var stateDirectory: String?
    /// Pause flag directory (`pause_dir`); nil: `<state dir>/pause`.
    public var pauseDirectory: String?
    /// Who may connect and who may administer (protocol/PROTOCOL.md §2 and §12).
    public var access = AccessConfig()
    /// Resource bounds of the daemon's connections.
    public var server = ServerLimits()
    /// Global and per-mode limits, fairness, lease defaults.
    public var limits = LimitsConfig()
    /// Per-project caps, in file order.
    public var projects: [ProjectConfig] = []
    /// Named counting semaphores (`[[pools]]`), in file order.
    public var pools: [PoolConfig] = []
    /// Providers, in file order (capability fallback walks them in this order).
    public var providers: [ProviderConfig] = []
    /// Per-model settings, by bare name or `provider/model`.
    public var models: [ModelConfig] = []
    /// The project circuit breaker.
    public var circuitBreaker = CircuitBreakerConfig()
    /// Model telemetry.
    public var telemetry = TelemetryConfig()
    /// Limits shared with other hosts (`[cluster]`); nil: every limit is this host's.
    public var cluster: ClusterConfig?

    /// The embedded defaults: what the daemon runs with when there is no file.
    public init() {}
}

/// Global and per-mode limits (`[limits]`).
public struct LimitsConfig: Sendable, Equatable {
    /// At most this many permits at once (`global`).
    public var global = 8
    /// Quota of `time`-mode permits (`time`).
    public var time = 3
    /// Quota of `issue`-mode permits (`issue`).
    public var issue = 2
    /// Waiter ordering (`fairness`).
    public var fairness = FairnessPolicy.roundRobin
    /// Lease ttl when an acquire names none (`default_ttl_ms`).
    public var defaultTTLMilliseconds: UInt64 = 30_000
    /// Priority aging step (`priority_aging_ms`): a waiter's effective priority rises by one
    /// per step waited; 0 disables aging.
    public var priorityAgingMilliseconds: UInt64 = 60_000
    /// How long a draining lease's process group has after SIGTERM before SIGKILL
    /// (`kill_grace_ms`; protocol/PROTOCOL.md §10.10).
    public var killGraceMilliseconds: UInt64 = 10_000

    public init() {}

    /// The quota of a mode, nil for the unquoted modes (`mention`, `any`).
    public func quota(of mode: Mode) -> Int? {
        switch mode {
        case .time: time
        case .issue: issue
        case .mention, .any: nil
        }
    }
}

/// A named counting semaphore (`[[pools]]`): a GPU, a build slot, a test database. An acquire
/// that names it takes one unit (protocol/PROTOCOL.md §8.2).
public struct PoolConfig: Sendable, Equatable {
    /// The pool's name.
    public var name: String
    /// How many units it has (1 … 1,000,000).
    public var limit: Int

    public init(name: String, limit: Int) {
        self.name = name
        self.limit = limit
    }

    /// Most units a pool may have, configured or ad hoc.
    public static let limitMax = 1_000_000
    /// Most pools one acquire may name.
    public static let perAcquireMax = 16
}

/// Caps of one project (`[[projects]]`). A project with no entry has no cap.
public struct ProjectConfig: Sendable, Equatable {
    /// The project name.
    public var name: String
    /// Cap over all modes (`max`); nil: none.
    public var max: Int?
    /// Cap over mention-mode permits (`max_mention`); works without `max`.
    public var maxMention: Int?

    public init(name: String, max: Int? = nil, maxMention: Int? = nil) {
        self.name = name
        self.max = max
        self.maxMention = maxMention
    }
}

/// How a provider is reached: over an API, or through a local CLI tool with its own plan.
public enum ProviderKind: String, Sendable, Equatable, Codable {
    case api, cli
}

/// A provider and the models it offers (`[[providers]]`).
public struct ProviderConfig: Sendable, Equatable {
    /// Provider name, the left half of `provider/model` (compared case-insensitively).
    public var name: String
    /// API or CLI.
    public var kind: ProviderKind
    /// Model names offered, in preference order.
    public var models: [String]

    public init(name: String, kind: ProviderKind = .api, models: [String] = []) {
        self.name = name
        self.kind = kind
        self.models = models
    }
}

/// Settings of a model (`[[models]]`), by bare name (every provider's pool of it) or by
/// `provider/model` (that pool only, and it wins over a bare entry).
public struct ModelConfig: Sendable, Equatable {
    /// `claude-opus-4` or `anthropic/claude-opus-4`.
    public var name: String
    /// Concurrency limit of the pool (`concurrency_limit`); nil: the tier's default.
    public var concurrencyLimit: Int?
    /// Cost tier (`tier`); nil: the catalog's.
    public var tier: CostTier?
    /// Tool support (`tools`); nil: the catalog's.
    public var tools: Bool?

    public init(name: String, concurrencyLimit: Int? = nil, tier: CostTier? = nil, tools: Bool? = nil) {
        self.name = name
        self.concurrencyLimit = concurrencyLimit
        self.tier = tier
        self.tools = tools
    }
}

/// The project circuit breaker (`[circuit_breaker]`).
public struct CircuitBreakerConfig: Sendable, Equatable {
    /// Consecutive `project-meta` failures that trip it (0 is treated as 1).
    public var threshold = 3
    /// Shell command run on a trip, with `TURNSTILE_PROJECT` and `TURNSTILE_FAILURES` set.
    public var onTrip: String?

    public init() {}
}

/// Model telemetry (`[telemetry]`).
public struct TelemetryConfig: Sendable, Equatable {
    /// Rolling window in seconds (`window_secs`).
    public var windowSeconds: UInt64 = 3600
    /// How long a subscription-limit flag lasts (`subscription_limit_ttl_secs`).
    public var subscriptionLimitTTLSeconds: UInt64 = 3600
    /// How many models, events per model and sessions are kept (`max_models`,
    /// `max_events_per_model`, `max_sessions`).
    public var bounds = Telemetry.Bounds()

    public init() {}
}

/// Who may connect and administer (top-level keys, protocol/PROTOCOL.md §2 and §12).
public struct AccessConfig: Sendable, Equatable {
    /// Socket file mode (`socket_mode`, e.g. `"0660"`).
    public var socketMode: UInt32 = 0o600
    /// Group owning the socket (`socket_group`), name or number; nil: the daemon's.
    public var socketGroup: String?
    /// Extra uids allowed to connect (`allow_uids`).
    public var allowUIDs: [UInt32] = []
    /// Extra gids allowed to connect (`allow_gids`).
    public var allowGIDs: [UInt32] = []
    /// Extra uids allowed the admin ops (`admin_uids`).
    public var adminUIDs: [UInt32] = []

    public init() {}
}

/// Bounds on what clients may make the daemon hold (`[server]`).
public struct ServerLimits: Sendable, Equatable {
    /// Most simultaneous connections (`max_connections`); more are answered `too_many`.
    public var maxConnections = 16_384
    /// Most waiting acquires per connection (`max_pending_per_connection`).
    public var maxPendingPerConnection = 256
    /// Most unsent answer bytes per connection before it is cut off (`max_output_bytes`);
    /// its input is paused at half of it, at most 64 KiB.
    public var maxOutputBytes = 1 << 20
    /// Most leases whose connection is this one (`max_leases_per_connection`): bound ones and
    /// detached ones acquired on it while it is open. A detached acquire is never refused by it.
    public var maxLeasesPerConnection = 1024
    /// Most waiters in the whole queue (`max_waiters`).
    public var maxWaiters = 100_000

    public init() {}
}
