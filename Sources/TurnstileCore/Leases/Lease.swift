/// A granted permit (protocol/PROTOCOL.md §10): who holds what, until when, bound to what.
public struct Lease: Sendable, Equatable {
    /// The capability token.
    public let token: LeaseToken
    /// The fencing token: strictly increasing with every grant, across restarts. It also
    /// identifies the lease inside the broker.
    public let fence: UInt64
    /// The dimensions it was granted on.
    public var request: AdmissionRequest
    /// The model pool it holds (nil if it asked for none).
    public var model: ModelKey?
    /// How it came by that model (nil if it asked for none).
    public var route: Route?
    /// Label for status and watch.
    public var holder: String?
    /// A process whose exit releases it.
    public var pid: Int32?
    /// A process group whose live members keep its slot taken after it ends (protocol/PROTOCOL.md §10.10).
    public var pgid: Int32?
    /// Heartbeat period allowance.
    public var ttlMilliseconds: UInt64
    /// When it was granted (or restored).
    public var grantedAt: Instant
    /// When it was last heartbeated (or granted).
    public var lastHeartbeatAt: Instant
    /// When it expires unless heartbeated.
    public var deadline: Instant
    /// The connection that receives its `expired`/`revoked` events, if still open.
    public var client: ClientID?
    /// Whether closing `client` releases it (false for detached and restored leases).
    public var bound: Bool
    /// Whether its capacity is given back while it keeps its workspace lock.
    public var parked: Bool
    /// How long its acquire (or unpark) waited.
    public var waitedMilliseconds: UInt64
    /// Set once it has ended while its process group still ran: it keeps its slot until the
    /// group is gone (protocol/PROTOCOL.md §10.10).
    public var drain: Drain?
    /// How its work finished, when its `release` said so.
    public var exit: ExitStatus?
    /// The fleet-wide fence of the shared unit it holds (protocol/CLUSTER.md §3: rising across
    /// every host); nil when it holds none. Not saved: a restart registers a new host lease.
    public var clusterFence: UInt64?

    /// Whether it holds capacity (global, mode, project, model).
    public var holdsCapacity: Bool { !parked }

    public init(token: LeaseToken, fence: UInt64, request: AdmissionRequest, model: ModelKey?, route: Route?,
                holder: String?, pid: Int32?, pgid: Int32? = nil, ttlMilliseconds: UInt64, grantedAt: Instant,
                lastHeartbeatAt: Instant, deadline: Instant, client: ClientID?, bound: Bool, parked: Bool,
                waitedMilliseconds: UInt64, drain: Drain? = nil) {
        self.token = token
        self.fence = fence
        self.request = request
        self.model = model
        self.route = route
        self.holder = holder
        self.pid = pid
        self.pgid = pgid
        self.ttlMilliseconds = ttlMilliseconds
        self.grantedAt = grantedAt
        self.lastHeartbeatAt = lastHeartbeatAt
        self.deadline = deadline
        self.client = client
        self.bound = bound
        self.parked = parked
        self.waitedMilliseconds = waitedMilliseconds
        self.drain = drain
    }

    /// How a lease whose work outlived it ended, while the daemon waits for that work to stop.
    public struct Drain: Sendable, Equatable {
        /// What ended the lease (never `drained`).
        public var cause: LeaseEndCause
        /// When it ended.
        public var since: Instant

        public init(cause: LeaseEndCause, since: Instant) {
            self.cause = cause
            self.since = since
        }
    }
}

/// How a holder said it finished (`release` with `exit_code` or `signal`).
public enum ExitStatus: Sendable, Equatable {
    /// Its work exited with this code.
    case code(Int32)
    /// A signal ended its work.
    case signal(Int32)
}

/// Why a lease ended; `watch` and the metrics tell them apart.
public enum LeaseEndCause: String, Sendable, Equatable, Codable {
    /// Its holder released it.
    case released
    /// Its deadline passed without a heartbeat.
    case expired
    /// An administrator took it away.
    case revoked
    /// Its bound connection closed.
    case disconnected
    /// Its bound process exited.
    case processExited = "process_exited"
    /// It had ended (by any of the above) while its process group ran; the group is now gone
    /// and the slot free.
    case drained

    /// Whether the daemon took it back because its holder vanished (counted as reclaimed).
    public var isReclaim: Bool { self == .disconnected || self == .processExited }
}

/// A lease as it is saved in the state directory and restored after a restart (protocol/PROTOCOL.md §13):
/// its token, fence and dimensions. Deadlines are not saved: a restored lease gets the restart
/// time plus its ttl, since nobody could heartbeat while the daemon was down.
public struct LeaseRecord: Sendable, Equatable, Codable {
    public var token: String
    public var fence: UInt64
    public var request: AdmissionRequest
    public var model: ModelKey?
    public var route: Route?
    public var holder: String?
    public var pid: Int32?
    public var pgid: Int32?
    public var ttlMilliseconds: UInt64
    public var parked: Bool
    /// What ended it, if it is draining (its process group still ran when it was saved).
    public var draining: LeaseEndCause?

    public init(_ lease: Lease) {
        pgid = lease.pgid
        draining = lease.drain?.cause
        token = lease.token.hex
        fence = lease.fence
        request = lease.request
        model = lease.model
        route = lease.route
        holder = lease.holder
        pid = lease.pid
        ttlMilliseconds = lease.ttlMilliseconds
        parked = lease.parked
    }

    enum CodingKeys: String, CodingKey {
        case token, fence, request, model, route, holder, pid, pgid, parked, draining
        case ttlMilliseconds = "ttl_ms"
    }

    /// Decodes with `parked` defaulting to false (the journal leaves it out).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        token = try c.decode(String.self, forKey: .token)
        fence = try c.decode(UInt64.self, forKey: .fence)
        request = try c.decode(AdmissionRequest.self, forKey: .request)
        model = try c.decodeIfPresent(ModelKey.self, forKey: .model)
        route = try c.decodeIfPresent(Route.self, forKey: .route)
        holder = try c.decodeIfPresent(String.self, forKey: .holder)
        pid = try c.decodeIfPresent(Int32.self, forKey: .pid)
        ttlMilliseconds = try c.decode(UInt64.self, forKey: .ttlMilliseconds)
        parked = try c.decodeIfPresent(Bool.self, forKey: .parked) ?? false
        pgid = try c.decodeIfPresent(Int32.self, forKey: .pgid)
        draining = try c.decodeIfPresent(LeaseEndCause.self, forKey: .draining)
    }
}
