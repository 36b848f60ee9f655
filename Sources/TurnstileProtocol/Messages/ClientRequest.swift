/// A request as a client sends it, typed: each case carries its op's fields
/// (protocol/PROTOCOL.md §8), and `fields` spells them as the daemon decodes them. The CLI
/// sends only these; a test decodes every case on the daemon's side and checks it means what
/// it says, so the two ends cannot drift apart.
public enum ClientRequest: Sendable {
    case hello(client: String?)
    case acquire(AcquireParameters)
    /// One lease (`lease`).
    case heartbeat(lease: String)
    /// Several leases (`leases`), answered with `results`.
    case heartbeatMany(leases: [String])
    case release(lease: String, end: ProcessEnd? = nil)
    case attach(lease: String, pid: Int32? = nil, pgid: Int32? = nil)
    /// Cancels the waiting request of this connection whose `id` was `target`.
    case cancel(target: JSONValue)
    /// Cancels the peer's waiting acquires held as `holder`.
    case cancelHolder(String)
    case status
    case pause(project: String)
    case resume(project: String)
    case report(project: String, agent: String, success: Bool)
    /// A throttle for `retry_after_ms`, or for a provider's `Retry-After` value (seconds or an
    /// HTTP date, passed as the provider sent it).
    case throttle(provider: String, tenant: String?, retryAfter: RetryAfterValue)
    /// `throttle` with `clear: true`.
    case clearThrottle(provider: String, tenant: String?)
    case unflag(model: String)
    case record(RecordParameters)
    case performance(model: String?)
    case usage(session: String)
    case metrics
    case watch
    case reload
    case park(lease: String)
    case unpark(lease: String, waitMilliseconds: UInt64, notify: Bool = false)
    case revoke(lease: String)
    case revokeFence(UInt64)

    /// How a process ended, for `release`.
    public enum ProcessEnd: Sendable, Equatable {
        case exitCode(Int32)
        case signal(Int32)
    }

    /// A throttle's length.
    public enum RetryAfterValue: Sendable, Equatable {
        case milliseconds(UInt64)
        /// A provider's `Retry-After` header, as it came.
        case header(String)
    }

    /// The op it is sent as.
    public var op: Op {
        switch self {
        case .hello: .hello
        case .acquire: .acquire
        case .heartbeat, .heartbeatMany: .heartbeat
        case .release: .release
        case .attach: .attach
        case .cancel, .cancelHolder: .cancel
        case .status: .status
        case .pause: .pause
        case .resume: .resume
        case .report: .report
        case .throttle, .clearThrottle: .throttle
        case .unflag: .unflag
        case .record: .record
        case .performance: .performance
        case .usage: .usage
        case .metrics: .metrics
        case .watch: .watch
        case .reload: .reload
        case .park: .park
        case .unpark: .unpark
        case .revoke, .revokeFence: .revoke
        }
    }

    /// Its fields besides `id` and `op`, in the order they are written.
    public var fields: [(String, JSONValue)] {
        switch self {
        case .hello(let client): return Self.optional("client", client.map(JSONValue.string))
        case .acquire(let parameters): return parameters.fields
        case .heartbeat(let lease): return [("lease", .string(lease))]
        case .heartbeatMany(let leases): return [("leases", .array(leases.map(JSONValue.string)))]
        case .release(let lease, let end):
            switch end {
            case .exitCode(let code)?: return [("lease", .string(lease)), ("exit_code", .integer(code))]
            case .signal(let signal)?: return [("lease", .string(lease)), ("signal", .integer(signal))]
            case nil: return [("lease", .string(lease))]
            }
        case .attach(let lease, let pid, let pgid):
            return [("lease", .string(lease))] + Self.optional("pid", pid.map(JSONValue.integer))
                + Self.optional("pgid", pgid.map(JSONValue.integer))
        case .cancel(let target): return [("target", target)]
        case .cancelHolder(let holder): return [("holder", .string(holder))]
        case .status, .metrics, .watch, .reload: return []
        case .pause(let project), .resume(let project): return [("project", .string(project))]
        case .report(let project, let agent, let success):
            return [("project", .string(project)), ("agent", .string(agent)), ("success", .bool(success))]
        case .throttle(let provider, let tenant, let retryAfter):
            let length: (String, JSONValue)
            switch retryAfter {
            case .milliseconds(let milliseconds): length = ("retry_after_ms", .integer(milliseconds))
            case .header(let text): length = ("retry_after", .string(text))
            }
            return [("provider", .string(provider))] + Self.optional("tenant", tenant.map(JSONValue.string)) + [length]
        case .clearThrottle(let provider, let tenant):
            return [("provider", .string(provider))] + Self.optional("tenant", tenant.map(JSONValue.string))
                + [("clear", .bool(true))]
        case .unflag(let model): return [("model", .string(model))]
        case .record(let parameters): return parameters.fields
        case .performance(let model): return Self.optional("model", model.map(JSONValue.string))
        case .usage(let session): return [("session_id", .string(session))]
        case .park(let lease): return [("lease", .string(lease))]
        case .unpark(let lease, let wait, let notify):
            return [("lease", .string(lease)), ("wait_ms", .integer(wait))] + (notify ? [("notify", .bool(true))] : [])
        case .revoke(let lease): return [("lease", .string(lease))]
        case .revokeFence(let fence): return [("fence", .integer(fence))]
        }
    }

    /// The request line: `{"id":…,"op":…,<fields>}` and a newline.
    public func encode(id: Int, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id")
        writer.int(id)
        writer.key("op")
        writer.string(op.rawValue)
        for (key, value) in fields {
            writer.dynamicKey(key)
            writer.value(value)
        }
        writer.endObject()
        writer.newline()
    }

    private static func optional(_ key: String, _ value: JSONValue?) -> [(String, JSONValue)] {
        value.map { [(key, $0)] } ?? []
    }
}

/// An `acquire`'s fields (protocol/PROTOCOL.md §8.2); nil and empty ones are not sent, so the
/// daemon's defaults apply.
public struct AcquireParameters: Sendable, Equatable {
    public var project: String?
    public var mode: String?
    public var model: String?
    public var fallback: [String] = []
    public var providers: [String] = []
    public var workspace: String?
    public var tenant: String?
    public var priority: Int?
    public var pools: [String] = []
    /// Limits for ad-hoc pools, in the order given.
    public var poolLimits: [(name: String, limit: Int)] = []
    public var waitMilliseconds: UInt64?
    public var ttlMilliseconds: UInt64?
    public var detach = false
    public var pid: Int32?
    public var pgid: Int32?
    public var holder: String?
    /// Asks for `queued` events while it waits.
    public var notify = false

    public init() {}

    public static func == (lhs: AcquireParameters, rhs: AcquireParameters) -> Bool {
        lhs.fields.map(\.0) == rhs.fields.map(\.0) && lhs.fields.map(\.1) == rhs.fields.map(\.1)
    }

    /// The fields as sent.
    public var fields: [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = []
        func add(_ key: String, _ value: JSONValue?) { if let value { fields.append((key, value)) } }
        add("project", project.map(JSONValue.string))
        add("mode", mode.map(JSONValue.string))
        add("model", model.map(JSONValue.string))
        if !fallback.isEmpty { add("fallback", .array(fallback.map(JSONValue.string))) }
        if !providers.isEmpty { add("providers", .array(providers.map(JSONValue.string))) }
        add("workspace", workspace.map(JSONValue.string))
        add("tenant", tenant.map(JSONValue.string))
        add("priority", priority.map(JSONValue.integer))
        if !pools.isEmpty { add("pools", .array(pools.map(JSONValue.string))) }
        if !poolLimits.isEmpty {
            add("pool_limits", .object(JSONObject(poolLimits.map { ($0.name, JSONValue.integer($0.limit)) })))
        }
        add("wait_ms", waitMilliseconds.map(JSONValue.integer))
        add("ttl_ms", ttlMilliseconds.map(JSONValue.integer))
        if detach { add("detach", .bool(true)) }
        add("pid", pid.map(JSONValue.integer))
        add("pgid", pgid.map(JSONValue.integer))
        add("holder", holder.map(JSONValue.string))
        if notify { add("notify", .bool(true)) }
        return fields
    }
}

/// A `record`'s fields (protocol/PROTOCOL.md §8.10): one completed model call.
public struct RecordParameters: Sendable, Equatable {
    public var model: String
    public var sessionID: String?
    public var latencyMilliseconds: UInt64
    public var success: Bool
    /// Token counts by kind (`input`, `output`, `reasoning`, `cache_read`, `cache_write`,
    /// `total`), in the order given.
    public var tokens: [(kind: String, count: UInt64)] = []
    public var costUSD: String?
    public var error: String?
    public var status: Int?

    public init(model: String, latencyMilliseconds: UInt64, success: Bool) {
        self.model = model
        self.latencyMilliseconds = latencyMilliseconds
        self.success = success
    }

    public static func == (lhs: RecordParameters, rhs: RecordParameters) -> Bool {
        lhs.fields.map(\.0) == rhs.fields.map(\.0) && lhs.fields.map(\.1) == rhs.fields.map(\.1)
    }

    /// The fields as sent.
    public var fields: [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("model", .string(model))]
        if let sessionID { fields.append(("session_id", .string(sessionID))) }
        fields.append(("latency_ms", .integer(latencyMilliseconds)))
        fields.append(("success", .bool(success)))
        if !tokens.isEmpty {
            fields.append(("tokens", .object(JSONObject(tokens.map { ($0.kind, JSONValue.integer($0.count)) }))))
        }
        if let costUSD { fields.append(("cost_usd", .number(JSONNumber(text: costUSD)))) }
        if let error { fields.append(("error", .string(error))) }
        if let status { fields.append(("status", .integer(status))) }
        return fields
    }
}

extension JSONValue {
    /// An integer value.
    public static func integer<T: BinaryInteger>(_ value: T) -> JSONValue { .number(JSONNumber(text: "\(value)")) }
}
