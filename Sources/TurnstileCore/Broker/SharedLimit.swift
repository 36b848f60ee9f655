/// A limit counted across the fleet rather than on this host (protocol/CLUSTER.md §2): a model
/// pool (`shared` names `models`), a project's caps (`projects`), or a configured pool
/// (`pools`). A grant that needs any of them claims one unit of each, all in one transaction,
/// so the fleet's use of every one of them stays within its limit.
public enum SharedLimit: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// A model pool, `slots/models/<provider/model>/<i>`.
    case model(ModelKey)
    /// A project's `max`, `slots/projects/<project>/<i>`.
    case project(ExactName)
    /// A project's `max_mention`, taken by mention-mode leases, `slots/mentions/<project>/<i>`.
    case projectMentions(ExactName)
    /// A pool named by `[[pools]]`, `slots/pools/<pool>/<i>`.
    case pool(ExactName)

    /// The key segment naming the kind of limit.
    public var kind: String {
        switch self {
        case .model: "models"
        case .project: "projects"
        case .projectMentions: "mentions"
        case .pool: "pools"
        }
    }

    /// The limit's name within its kind, as its keys spell it (before encoding).
    public var name: String {
        switch self {
        case .model(let key): key.description
        case .project(let name), .projectMentions(let name), .pool(let name): name.text
        }
    }

    /// Reads a kind and name back from a key; nil for an unknown kind or a model name that
    /// does not parse.
    public init?(kind: String, name: String) {
        switch kind {
        case "models":
            guard let key = ModelKey(parsing: name) else { return nil }
            self = .model(key)
        case "projects": self = .project(ExactName(name))
        case "mentions": self = .projectMentions(ExactName(name))
        case "pools": self = .pool(ExactName(name))
        default: return nil
        }
    }

    /// A model as its name (what `status` has always shown for models); the other kinds as
    /// `kind:name` (`projects:web`, `mentions:web`, `pools:gpu`), which no model name is.
    public var description: String {
        if case .model(let key) = self { return key.description }
        return kind + ":" + name
    }

    public static func < (lhs: SharedLimit, rhs: SharedLimit) -> Bool {
        (lhs.kind, lhs.name) < (rhs.kind, rhs.name)
    }
}

/// One unit of a shared limit that a grant needs, with the limit's value (the claimed slot's
/// index is below it).
public struct SharedUnit: Sendable, Equatable {
    public let limit: SharedLimit
    public let capacity: Int

    public init(_ limit: SharedLimit, capacity: Int) {
        self.limit = limit
        self.capacity = capacity
    }
}

extension Broker {
    /// The shared units a grant of `request` with `model` takes: one of its model pool (when
    /// models are shared), of its project's caps (when projects are shared and the project has
    /// them), and of each configured pool it names (when pools are shared). Empty: the grant is
    /// this host's alone. Ad-hoc pools (`pool_limits`) stay per host.
    func sharedUnits(_ request: AdmissionRequest, model: ModelKey?) -> [SharedUnit] {
        guard let sharing = clusterSharing else { return [] }
        var units: [SharedUnit] = []
        if sharing.models, let model { units.append(SharedUnit(.model(model), capacity: models.limit(of: model))) }
        if sharing.projects, case let project = ExactName(request.project), let caps = projectCaps[project] {
            if let max = caps.max { units.append(SharedUnit(.project(project), capacity: max)) }
            if request.mode == .mention, let max = caps.maxMention {
                units.append(SharedUnit(.projectMentions(project), capacity: max))
            }
        }
        if sharing.pools, request.namesPools {
            for pool in request.pools.map(ExactName.init) {
                if let limit = poolCaps[pool] { units.append(SharedUnit(.pool(pool), capacity: limit)) }
            }
        }
        return units
    }

    /// The units an admitted request claims before it is granted; nil when it needs none (the
    /// single-host path pays one test of `claimsShared`).
    func unitsToClaim(_ request: AdmissionRequest, model: ModelKey?) -> [SharedUnit]? {
        guard claimsShared else { return nil }
        let units = sharedUnits(request, model: model)
        return units.isEmpty ? nil : units
    }

    /// Whether a claim found `limit` with no free unit across the cluster (and none was seen
    /// freed since).
    public func isFullAcrossCluster(_ limit: SharedLimit) -> Bool {
        cluster?.exhausted.contains(limit) == true
    }
}

/// Which kinds of limit this host claims from the cluster (`[cluster] shared`).
struct ClusterSharing: Sendable, Equatable {
    var models: Bool
    var projects: Bool
    var pools: Bool

    /// Nil when no kind with units is shared: no claim is ever made.
    init?(_ config: ClusterConfig?) {
        guard let shared = config?.shared else { return nil }
        models = shared.contains(.models)
        projects = shared.contains(.projects)
        pools = shared.contains(.pools)
        guard models || projects || pools else { return nil }
    }
}

/// One of this host's requests in the fleet's line for a shared limit (protocol/CLUSTER.md §4):
/// the transport puts a ticket in etcd for each, whose create revision is its place among
/// equals, so the fleet serves its waiters in order of arrival in the cluster.
public struct FleetWaiter: Sendable, Equatable {
    /// The request (stable while it waits, claims, and waits again).
    public let ticket: Ticket
    /// Its effective priority; 0 unless `fairness = "priority"`.
    public let priority: Int

    public init(ticket: Ticket, priority: Int) {
        self.ticket = ticket
        self.priority = priority
    }
}
