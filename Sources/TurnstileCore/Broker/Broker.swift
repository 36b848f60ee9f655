/// The broker: every limit, the fair queue, leases and the project controls, as one
/// deterministic state machine (README, "Concepts").
///
/// It does no I/O and reads no clock. Each operation takes `now` and returns a `Transition`:
/// its reply, and in order everything else it caused (a waiter granted, a lease ended, a
/// project paused), which the daemon carries out. Admission is one check-and-reserve inside
/// one call, so no two acquires can both pass a check only one fits.
///
/// The daemon's event loop owns it; nothing here is shared between threads.
public struct Broker: Sendable {
    public internal(set) var config: TurnstileConfig
    var models: ModelTable
    var projectCaps: [ExactName: ProjectConfig]
    /// Configured pools' limits (`[[pools]]`).
    var poolCaps: [ExactName: Int]

    var occupancy = Occupancy()
    /// Live leases by fence.
    var leases: [UInt64: Lease] = [:]
    var tokens: [LeaseToken: UInt64] = [:]
    var leasesByClient: [ClientID: Set<UInt64>] = [:]
    var leasesByPid: [Int32: Set<UInt64>] = [:]
    /// Leases that have ended while their process group ran, by fence: they keep their slot
    /// (capacity and workspace) until `processGroupEnded` (protocol/PROTOCOL.md §10.10).
    var draining: [UInt64: Lease] = [:]
    var leaseDeadlines = DeadlineHeap()
    var queue = WaitQueue()

    /// Provider throttles in force.
    public internal(set) var throttles = ThrottleTable()
    /// Paused projects, byte for byte as their flag files are named.
    public internal(set) var paused: Set<ExactName> = []
    /// Subscription-limit flags by model string (bare or `provider/model`), monotonic end.
    var modelFlags = FlagTable()
    /// The project circuit breaker.
    public internal(set) var breaker: CircuitBreaker
    /// Model telemetry.
    public internal(set) var telemetry: Telemetry
    /// Counters and wait statistics.
    public internal(set) var metrics = BrokerMetrics()
    /// The last fence issued (or restored); the next grant gets one more.
    public internal(set) var fenceHighWater: UInt64
    /// Whether any limit is claimed from the cluster (`[cluster]` sharing `models`, `projects`
    /// or `pools`): a grant needing a shared unit is then claimed first (protocol/CLUSTER.md
    /// §3). Kept from the start: the one test the single-host path pays for it.
    let claimsShared: Bool
    /// Which kinds are claimed; nil when none is.
    let clusterSharing: ClusterSharing?
    /// Whether model pools are among them (the model choice then reads the cluster).
    let claimsModels: Bool
    /// The cluster, when some capacity is shared; nil otherwise.
    var cluster: ClusterState?

    /// Whether debug builds assert the invariants after every mutation. The simulation test
    /// turns it off to check them itself and report the failing seed instead of stopping.
    public var assertsInvariants = true

    /// Whether any process of a group still runs (not a zombie). The daemon asks the kernel;
    /// tests answer from a table. Asked only when a lease with a `pgid` ends.
    public var processGroupAlive: @Sendable (Int32) -> Bool = { _ in false }

    var random: any RandomNumberGenerator & Sendable
    /// What the current operation caused so far; handed over in its `Transition`.
    var effects: [Effect] = []

    /// Creates a broker with no leases.
    /// - Parameters:
    ///   - config: limits, projects, models and controls.
    ///   - random: the source of lease tokens (the system's generator in the daemon).
    ///   - fenceHighWater: the highest fence ever issued, so fences keep rising across restarts.
    public init(config: TurnstileConfig, random: any RandomNumberGenerator & Sendable, fenceHighWater: UInt64 = 0) {
        self.config = config
        self.models = ModelTable(providers: config.providers, models: config.models)
        self.projectCaps = Dictionary(config.projects.map { (ExactName($0.name), $0) }, uniquingKeysWith: { $1 })
        self.poolCaps = Self.poolCaps(config)
        self.breaker = CircuitBreaker(threshold: config.circuitBreaker.threshold)
        self.telemetry = Telemetry(windowSeconds: config.telemetry.windowSeconds,
                                   subscriptionLimitTTLSeconds: config.telemetry.subscriptionLimitTTLSeconds,
                                   bounds: config.telemetry.bounds)
        self.random = random
        self.fenceHighWater = fenceHighWater
        clusterSharing = ClusterSharing(config.cluster)
        cluster = clusterSharing.map { _ in ClusterState(onLoss: config.cluster!.onLoss) }
        claimsShared = clusterSharing != nil
        claimsModels = clusterSharing?.models == true
    }

    static func poolCaps(_ config: TurnstileConfig) -> [ExactName: Int] {
        Dictionary(config.pools.map { (ExactName($0.name), $0.limit) }, uniquingKeysWith: { $1 })
    }

    /// Hands the pending effects over and empties the outbox (the tests' view of a decision).
    mutating func drainEffects() -> [Effect] {
        defer { effects.removeAll(keepingCapacity: true) }
        return effects
    }

    /// The outbox's effects, for a `Transition`; the outbox starts empty again.
    mutating func takeEffects() -> [Effect] {
        guard !effects.isEmpty else { return [] }
        var taken: [Effect] = []
        swap(&taken, &effects)
        return taken
    }

    /// Gives the broker an emptied effects array back to fill next, so that a daemon passing
    /// its carried-out transitions' arrays back allocates none per operation.
    public mutating func recycle(_ buffer: inout [Effect]) {
        guard effects.isEmpty, effects.capacity < buffer.capacity else { return }
        buffer.removeAll(keepingCapacity: true)
        swap(&effects, &buffer)
    }

    /// Number of live leases.
    public var leaseCount: Int { leases.count }

    /// Number of waiting requests.
    public var waiterCount: Int { queue.count }

    /// A live lease by token.
    public func lease(_ token: LeaseToken) -> Lease? {
        tokens[token].flatMap { leases[$0] }
    }

    /// A live lease by fence.
    public func lease(fence: UInt64) -> Lease? { leases[fence] }

    /// Leases whose events go to a connection (bound or not).
    public func leaseCount(of client: ClientID) -> Int { leasesByClient[client]?.count ?? 0 }

    /// Waiting requests of a connection.
    public func pendingCount(of client: ClientID) -> Int { queue.pendingCount(of: client) }

    /// Whether a ticket is waiting.
    public func isWaiting(_ ticket: Ticket) -> Bool { queue.id(of: ticket) != nil }

    /// The process groups of draining leases (for the daemon to watch, e.g. after a restart).
    public var drainingGroups: [Int32] { Set(draining.values.compactMap(\.pgid)).sorted() }

    /// Every pid some live lease is bound to.
    public var watchedPids: [Int32] { leasesByPid.keys.sorted() }

    /// The model pool a bare name means: the first configured provider offering it.
    public func resolveModel(_ name: String) -> ModelKey? { models.resolveBareModel(name) }

    /// The candidates an admission request is checked against.
    func candidates(for request: AdmissionRequest) -> [ModelCandidate] {
        guard let primary = request.model else { return [] }
        return models.candidates(primary: primary, chain: request.fallback)
    }
}
