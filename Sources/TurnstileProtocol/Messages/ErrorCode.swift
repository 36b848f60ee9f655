/// The normative error codes of the wire protocol (protocol/PROTOCOL.md). Clients branch on these, never
/// on the human `message`.
public enum ErrorCode: String, Sendable, CaseIterable {
    /// The line is not JSON.
    case badJSON = "bad_json"
    /// The JSON is not a valid request; the answer names the `field`.
    case badRequest = "bad_request"
    /// The `op` is not one the daemon knows.
    case unknownOp = "unknown_op"
    /// The line is over 64 KiB; answered, then the connection is closed.
    case lineTooLong = "line_too_long"
    /// No live lease (or pending request) matches.
    case notFound = "not_found"
    /// The peer may not do this (or connect at all).
    case forbidden
    /// A limit blocks the permit now (`reason`, and `retry_after_ms` where known).
    case unavailable
    /// A wait ended without a grant (`reason` is the last one met).
    case timeout
    /// The client cancelled the wait.
    case cancelled
    /// The daemon is stopping.
    case shuttingDown = "shutting_down"
    /// A resource bound is reached (connections, pending requests, leases, waiters).
    case tooMany = "too_many"
    /// A reload found an invalid config; the running one is kept.
    case badConfig = "bad_config"
}

/// The operations of the wire protocol (protocol/PROTOCOL.md).
public enum Op: String, Sendable, CaseIterable {
    case hello, acquire, heartbeat, release, attach, cancel, status, pause, resume, report, throttle
    case record, performance, usage, metrics, watch, reload, park, unpark, revoke, unflag

    /// Every op's name as bytes, to match a request's `op` without making a `String` (the
    /// synthesized `init(rawValue:)` hashes the string through a generic switch cache).
    private static let names: [(utf8: [UInt8], op: Op)] = allCases.map { (Array($0.rawValue.utf8), $0) }

    /// The op named by these UTF-8 bytes, if any.
    public init?(utf8 name: UnsafeBufferPointer<UInt8>) {
        for entry in Op.names where entry.utf8.count == name.count && Self.same(entry.utf8, name) {
            self = entry.op
            return
        }
        return nil
    }

    /// Byte-wise equality by index (a generic `elementsEqual` walks two iterators, 160
    /// instructions for a five-letter op).
    private static func same(_ name: [UInt8], _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        name.withUnsafeBufferPointer { name in
            for index in 0..<name.count where name[index] != bytes[index] { return false }
            return true
        }
    }

    /// Ops reserved for the daemon's owner, root and `admin_uids` (protocol/PROTOCOL.md §2 and §12).
    public var isAdmin: Bool {
        switch self {
        case .pause, .resume, .throttle, .reload, .revoke, .unflag: true
        default: false
        }
    }

    /// `fields`, ready for the check every request goes through (built once per op; found by
    /// the op's place in `allCases`, not by hashing: an enum with a String raw value hashes
    /// its name).
    public var knownFields: KnownFields { Self.knownFieldsByOrdinal[ordinal] }

    private static let knownFieldsByOrdinal: [KnownFields] = allCases.map { KnownFields($0.fields) }

    /// The op's place in `allCases`.
    private var ordinal: Int {
        switch self {
        case .hello: 0
        case .acquire: 1
        case .heartbeat: 2
        case .release: 3
        case .attach: 4
        case .cancel: 5
        case .status: 6
        case .pause: 7
        case .resume: 8
        case .report: 9
        case .throttle: 10
        case .record: 11
        case .performance: 12
        case .usage: 13
        case .metrics: 14
        case .watch: 15
        case .reload: 16
        case .park: 17
        case .unpark: 18
        case .revoke: 19
        case .unflag: 20
        }
    }

    /// The fields this op knows besides `op` and `id` (protocol/PROTOCOL.md §3): any other is
    /// a `bad_request` naming it, so that a typo (`projct`) is an error, not a default.
    public var fields: [StaticString] {
        switch self {
        case .hello: ["client"]
        case .acquire:
            ["project", "mode", "model", "fallback", "providers", "workspace", "tenant", "priority", "wait_ms",
             "ttl_ms", "detach", "pid", "pgid", "holder", "notify", "pools", "pool_limits"]
        case .heartbeat: ["lease", "leases"]
        case .release: ["lease", "exit_code", "signal"]
        case .attach: ["lease", "pid", "pgid"]
        case .cancel: ["target", "holder"]
        case .status, .metrics, .watch, .reload: []
        case .pause, .resume: ["project"]
        case .report: ["project", "agent", "success"]
        case .throttle: ["provider", "tenant", "retry_after_ms", "retry_after", "clear"]
        case .record: ["model", "session_id", "latency_ms", "success", "tokens", "cost_usd", "error", "status"]
        case .performance: ["model"]
        case .usage: ["session_id"]
        case .park: ["lease"]
        case .unpark: ["lease", "wait_ms", "notify"]
        case .revoke: ["lease", "fence"]
        case .unflag: ["model"]
        }
    }
}
