/// The dimensions a permit is checked against: everything the admission check needs and
/// nothing about how the answer is delivered. A lease keeps it, so that `unpark` and a
/// restart can check it again.
public struct AdmissionRequest: Sendable, Equatable, Codable {
    /// The fields, shared by every copy until one of them changes. A request travels with its
    /// lease into effects, journal lines, waiters and answers; sharing makes each of those
    /// copies one retain instead of one per string and array (README, "Performance").
    private var storage: Storage

    /// The project (validated; `__global__` when the acquire names none).
    public var project: String {
        get { storage.project }
        set { unique().project = newValue }
    }
    /// The mode.
    public var mode: Mode {
        get { storage.mode }
        set { unique().mode = newValue }
    }
    /// The primary model, if any.
    public var model: ModelKey? {
        get { storage.model }
        set { unique().model = newValue }
    }
    /// The acquire's own fallback chain.
    public var fallback: [ModelKey] {
        get { storage.fallback }
        set { unique().fallback = newValue }
    }
    /// Providers the work needs besides its model's (a throttle on any of them holds it).
    public var providers: [String] {
        get { storage.providers }
        set { unique().providers = newValue }
    }
    /// The normalised workspace path, if any.
    public var workspace: String? {
        get { storage.workspace }
        set { unique().workspace = newValue }
    }
    /// The tenant whose throttles apply.
    public var tenant: String {
        get { storage.tenant }
        set { unique().tenant = newValue }
    }
    /// Priority for the `priority` policy.
    public var priority: Int {
        get { storage.priority }
        set { unique().priority = newValue }
    }
    /// Pools it takes one unit of each of (protocol/PROTOCOL.md §8.2), without repeats.
    public var pools: [String] {
        get { storage.poolDemand?.names ?? [] }
        set { unique().poolDemand = PoolDemand.make(names: newValue, limits: poolLimits) }
    }
    /// Limits for pools the config does not name (`pool_limits`): the first holder's sets an
    /// ad-hoc pool's limit.
    public var poolLimits: [String: Int] {
        get { storage.poolDemand?.limits ?? [:] }
        set { unique().poolDemand = PoolDemand.make(names: pools, limits: newValue) }
    }

    /// Whether it names any pool (checked on every admission; no array is built).
    public var namesPools: Bool { storage.poolDemand.map { !$0.names.isEmpty } ?? false }

    public init(project: String = Names.globalProject, mode: Mode = .any, model: ModelKey? = nil,
                fallback: [ModelKey] = [], providers: [String] = [], workspace: String? = nil,
                tenant: String = "local", priority: Int = 0, pools: [String] = [], poolLimits: [String: Int] = [:]) {
        var unique = pools
        if pools.count > 1 {
            var seen = Set<ExactName>()
            unique = pools.filter { seen.insert(ExactName($0)).inserted }
        }
        storage = Storage(project: project, mode: mode, model: model, fallback: fallback,
                          providers: providers.map { $0.lowercased() }, workspace: workspace, tenant: tenant,
                          priority: priority, poolDemand: PoolDemand.make(names: unique, limits: poolLimits))
    }

    /// The storage, copied first if another request shares it.
    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    public static func == (lhs: AdmissionRequest, rhs: AdmissionRequest) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    enum CodingKeys: String, CodingKey {
        case project, mode, model, fallback, providers, workspace, tenant, priority, pools
        case poolLimits = "pool_limits"
    }

    /// Decodes with every field optional, defaults where absent (the journal leaves them out).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(project: try c.decodeIfPresent(String.self, forKey: .project) ?? Names.globalProject,
                  mode: try c.decodeIfPresent(Mode.self, forKey: .mode) ?? .any,
                  model: try c.decodeIfPresent(ModelKey.self, forKey: .model),
                  fallback: try c.decodeIfPresent([ModelKey].self, forKey: .fallback) ?? [],
                  providers: try c.decodeIfPresent([String].self, forKey: .providers) ?? [],
                  workspace: try c.decodeIfPresent(String.self, forKey: .workspace),
                  tenant: try c.decodeIfPresent(String.self, forKey: .tenant) ?? "local",
                  priority: try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0,
                  pools: try c.decodeIfPresent([String].self, forKey: .pools) ?? [],
                  poolLimits: try c.decodeIfPresent([String: Int].self, forKey: .poolLimits) ?? [:])
    }

    /// Encodes every field; the pools only when it names some (the decoder's defaults).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(project, forKey: .project)
        try c.encode(mode, forKey: .mode)
        try c.encodeIfPresent(model, forKey: .model)
        try c.encode(fallback, forKey: .fallback)
        try c.encode(providers, forKey: .providers)
        try c.encodeIfPresent(workspace, forKey: .workspace)
        try c.encode(tenant, forKey: .tenant)
        try c.encode(priority, forKey: .priority)
        if let poolDemand = storage.poolDemand {
            try c.encode(poolDemand.names, forKey: .pools)
            if !poolDemand.limits.isEmpty { try c.encode(poolDemand.limits, forKey: .poolLimits) }
        }
    }
}

extension AdmissionRequest {
    /// A request's fields, behind one reference. Mutated only through `unique()`, so a shared
    /// instance is never changed: that is what makes the unchecked `Sendable` sound.
    private final class Storage: @unchecked Sendable {
        var project: String
        var mode: Mode
        var model: ModelKey?
        var fallback: [ModelKey]
        var providers: [String]
        var workspace: String?
        var tenant: String
        var priority: Int
        var poolDemand: PoolDemand?

        init(project: String, mode: Mode, model: ModelKey?, fallback: [ModelKey], providers: [String],
             workspace: String?, tenant: String, priority: Int, poolDemand: PoolDemand?) {
            self.project = project
            self.mode = mode
            self.model = model
            self.fallback = fallback
            self.providers = providers
            self.workspace = workspace
            self.tenant = tenant
            self.priority = priority
            self.poolDemand = poolDemand
        }

        func copy() -> Storage {
            Storage(project: project, mode: mode, model: model, fallback: fallback, providers: providers,
                    workspace: workspace, tenant: tenant, priority: priority, poolDemand: poolDemand)
        }

        /// The fields compared by `==` (pool demands by content).
        var fields: Fields {
            Fields(project: project, mode: mode, model: model, fallback: fallback, providers: providers,
                   workspace: workspace, tenant: tenant, priority: priority, poolDemand: poolDemand)
        }
    }

    /// A request's fields as one comparable value.
    private struct Fields: Equatable {
        var project: String
        var mode: Mode
        var model: ModelKey?
        var fallback: [ModelKey]
        var providers: [String]
        var workspace: String?
        var tenant: String
        var priority: Int
        var poolDemand: PoolDemand?
    }
}

/// The pools an admission request names and the limits it carries for them (immutable; a
/// change makes a new one).
final class PoolDemand: Sendable, Equatable {
    let names: [String]
    let limits: [String: Int]

    private init(names: [String], limits: [String: Int]) {
        self.names = names
        self.limits = limits
    }

    /// nil when there is nothing to hold.
    static func make(names: [String], limits: [String: Int]) -> PoolDemand? {
        names.isEmpty && limits.isEmpty ? nil : PoolDemand(names: names, limits: limits)
    }

    static func == (lhs: PoolDemand, rhs: PoolDemand) -> Bool {
        lhs === rhs || (lhs.names == rhs.names && lhs.limits == rhs.limits)
    }
}

/// An `acquire`: the dimensions plus how the lease should live and how long to wait.
public struct AcquireRequest: Sendable, Equatable {
    /// What to check.
    public var admission: AdmissionRequest
    /// How long to wait for a grant; 0 answers at once.
    public var waitMilliseconds: UInt64
    /// The lease's ttl; nil: the configured default.
    public var ttlMilliseconds: UInt64?
    /// Whether the lease survives its connection.
    public var detach: Bool
    /// A process whose exit releases the lease.
    public var pid: Int32?
    /// A process group whose live members keep the slot taken after the lease ends.
    public var pgid: Int32?
    /// A label shown by `status` and `watch`.
    public var holder: String?

    public init(_ admission: AdmissionRequest, waitMilliseconds: UInt64 = 0, ttlMilliseconds: UInt64? = nil,
                detach: Bool = false, pid: Int32? = nil, pgid: Int32? = nil, holder: String? = nil) {
        self.pgid = pgid
        self.admission = admission
        self.waitMilliseconds = waitMilliseconds
        self.ttlMilliseconds = ttlMilliseconds
        self.detach = detach
        self.pid = pid
        self.holder = holder
    }

    /// Shortest and longest ttl accepted (protocol/PROTOCOL.md).
    public static let ttlRange: ClosedRange<UInt64> = 100...86_400_000
}
