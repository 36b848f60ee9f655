/// Answers and events as a client reads them, typed (protocol/PROTOCOL.md §7 and §9). Each
/// reads the fields the daemon writes; the session's tests decode the daemon's own bytes with
/// them, so a renamed field fails a test on both sides at once.

/// A failed answer: the code clients branch on and what the daemon said about it.
public struct WireFailure: Error, Sendable, Equatable {
    /// The error code as sent (`unavailable`, `timeout`, …); a code this client does not know
    /// is kept as text.
    public var code: String
    public var message: String
    /// The field to blame (`bad_request`).
    public var field: String?
    /// The limit that blocked (`unavailable`, `timeout`), or `storage`.
    public var reason: String?
    public var limit: Int64?
    public var inUse: Int64?
    public var retryAfterMilliseconds: Int64?

    /// The failure an answer carries; nil if it is not one (`ok` is not false).
    public init?(_ object: JSONObject) {
        guard object["ok"]?.boolValue == false else { return nil }
        code = object["error"]?.stringValue ?? "unknown"
        message = object["message"]?.stringValue ?? ""
        field = object["field"]?.stringValue
        reason = object["reason"]?.stringValue
        limit = object["limit"]?.numberValue?.int64
        inUse = object["in_use"]?.numberValue?.int64
        retryAfterMilliseconds = object["retry_after_ms"]?.numberValue?.int64
    }

    /// The code, if it is one of the protocol's.
    public var errorCode: ErrorCode? { ErrorCode(rawValue: code) }
}

/// A granted `acquire` or `unpark`.
public struct Grant: Sendable, Equatable {
    /// The lease token: every later request about the lease names it.
    public var lease: String
    public var fence: UInt64
    public var ttlMilliseconds: UInt64
    /// The model pool it holds (`provider/model`), if it asked for one.
    public var model: String?
    /// `primary`, `fallback` or `capability`, when it holds a model.
    public var route: String?
    public var waitedMilliseconds: UInt64
    public var project: String?
    public var mode: String?
    /// For a lease holding capacity shared across hosts (protocol/CLUSTER.md §6): its place in
    /// the fleet-wide order of grants.
    public var clusterFence: UInt64?
    /// For such a lease under `on_loss = "revoke"`: milliseconds from the answer until which
    /// the grant is surely valid; heartbeat answers carry it anew. A holder stops its work
    /// by then on its own, even if the daemon says nothing (it may be frozen).
    public var validUntilMilliseconds: UInt64?

    /// The grant an answer carries; nil if it is not one.
    public init?(_ object: JSONObject) {
        guard object["ok"]?.boolValue == true, let lease = object["lease"]?.stringValue,
              let fence = object["fence"]?.numberValue.flatMap({ UInt64($0.text) }) else { return nil }
        self.lease = lease
        self.fence = fence
        ttlMilliseconds = object["ttl_ms"]?.numberValue.flatMap { UInt64($0.text) } ?? 0
        model = object["model"]?.stringValue
        route = object["route"]?.stringValue
        waitedMilliseconds = object["waited_ms"]?.numberValue.flatMap { UInt64($0.text) } ?? 0
        project = object["project"]?.stringValue
        mode = object["mode"]?.stringValue
        clusterFence = object["cluster_fence"]?.numberValue.flatMap { UInt64($0.text) }
        validUntilMilliseconds = object["valid_until_ms"]?.numberValue.flatMap { UInt64($0.text) }
    }
}

/// An event: `queued` to a waiting request that asked for it, `expired` or `revoked` to a
/// lease's holder, or one of `watch`'s.
public struct WireEvent: Sendable, Equatable {
    /// The event's name.
    public var name: String
    /// The whole line, for the fields of `watch` events.
    public var object: JSONObject

    /// The event a line carries; nil if it is an answer.
    public init?(_ object: JSONObject) {
        guard object["ok"] == nil, let name = object["event"]?.stringValue else { return nil }
        self.name = name
        self.object = object
    }

    /// A `queued` event's place in the queue.
    public var position: Int64? { object["position"]?.numberValue?.int64 }
    /// Why a waiter waits (`queued`), or why a lease ended (`cause` of `released`).
    public var reason: String? { object["reason"]?.stringValue }
    /// The lease an `expired` or `revoked` event is about (its holder's token).
    public var lease: String? { object["lease"]?.stringValue }
    public var fence: UInt64? { object["fence"]?.numberValue.flatMap { UInt64($0.text) } }
}
