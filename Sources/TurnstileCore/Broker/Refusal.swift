/// Why a permit is not granted now. The normative codes, in the order they are checked and
/// reported (README, "Concepts"; protocol/PROTOCOL.md §6): the first that blocks is the reason.
public enum BlockReason: String, Sendable, Equatable, CaseIterable, Codable {
    case paused
    case rateLimit = "rate_limit"
    case workspaceLock = "workspace_lock"
    case pool
    case mode, project, mention, proportional, model
    /// The request's model is shared across hosts and the cluster cannot be reached: checked
    /// with the model, so it comes before `global` (protocol/CLUSTER.md §5). Not a limit:
    /// it has no `limit` or `in_use`.
    case cluster
    case global
}

/// A refusal: which limit blocked, and what is known of it.
public struct Refusal: Error, Sendable, Equatable {
    /// The first blocking reason.
    public var reason: BlockReason
    /// The limit that blocked, where it has one.
    public var limit: Int?
    /// How much of it is in use.
    public var inUse: Int?
    /// When it is expected to allow, where known (throttles).
    public var retryAfterMilliseconds: UInt64?
    /// A human detail: which project, workspace, provider or model.
    public var detail: String

    public init(_ reason: BlockReason, limit: Int? = nil, inUse: Int? = nil,
                retryAfterMilliseconds: UInt64? = nil, detail: String) {
        self.reason = reason
        self.limit = limit
        self.inUse = inUse
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.detail = detail
    }
}

/// What an `acquire` (or `unpark`) gets at once.
public enum AcquireOutcome: Sendable, Equatable {
    /// Granted now.
    case granted(Lease)
    /// Not granted and not waiting (`wait_ms` 0): consumed nothing.
    case refused(Refusal)
    /// Waiting; answered later through an `Effect.answer`. `position` counts from 1.
    case queued(position: Int, Refusal)
    /// Not considered: a resource bound of the daemon (`[server]` config) is reached.
    case overBound(ResourceBound)
    /// Its local limits are reserved and its model's shared unit is being claimed from the
    /// cluster (protocol/CLUSTER.md §3): answered later through `Effect.granted` or `.failed`,
    /// as a queued request is.
    case claiming
    /// Not considered: it cannot be granted as asked (a pool with no limit, or a limit that
    /// disagrees with the one in force); a `bad_request` naming the field.
    case invalid(field: String, message: String)
}

/// A `[server]` resource bound an acquire can meet (protocol/PROTOCOL.md §2 and §12), with its configured value.
public enum ResourceBound: Sendable, Equatable {
    /// The connection already holds `max_leases_per_connection` leases.
    case leasesPerConnection(Int)
    /// The queue already holds `max_waiters` waiters.
    case waiters(Int)
    /// The connection already waits on `max_pending_per_connection` requests.
    case pendingPerConnection(Int)
}

/// Errors of operations on an existing lease or request.
public enum LeaseError: Error, Sendable, Equatable {
    /// No live lease has that token (or fence).
    case notFound
    /// The request is malformed in a way only the broker can see.
    case badRequest(field: String, message: String)
    /// A `[server]` resource bound is reached.
    case overBound(ResourceBound)
}

/// How a waiting request ended without a grant.
public enum WaitFailure: Sendable, Equatable {
    /// Its `wait_ms` passed; the refusal it last met.
    case timeout(Refusal)
    /// The client cancelled it.
    case cancelled
    /// The daemon is stopping.
    case shuttingDown
    /// The lease an `unpark` waited for ended meanwhile.
    case leaseGone
    /// A request that does not wait (`wait_ms` 0) was blocked once its claim failed, or once
    /// the cluster was lost while it claimed: answered `unavailable`, as a refusal at once is.
    case refused(Refusal)
}
