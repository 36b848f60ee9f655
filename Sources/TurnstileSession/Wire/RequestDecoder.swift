import TurnstileCore
import TurnstileProtocol

/// Turns a request line's JSON object into a `Request`, checking every field's type and
/// range. The daemon answers its errors as they are: `unknown_op`, or `bad_request` with the
/// `field`.
public enum RequestDecoder {
    /// Most elements of a heartbeat's `leases`: as many lease tokens as one line can hold.
    /// The shortest such line is `{"op":"heartbeat","leases":[]}` (30 bytes) plus 35 bytes
    /// per token (34 for the quoted token, one for its comma, one comma fewer than tokens):
    /// (65,536 − 29) / 35 = 1,871. A longer array can only hold non-tokens, each answered with
    /// an error; bounding it keeps the answer within a connection's output bound.
    public static let heartbeatLeasesMax = (LineFramer.lineBytesMax - 29) / 35

    /// Decodes a request from a scanned line (the daemon's path).
    /// - Parameters:
    ///   - view: the line's top-level object.
    ///   - resolveModel: maps a bare model name (no provider) to a pool, or nil if unknown.
    public static func decode(_ view: JSONObjectView,
                              resolveModel: (String) -> ModelKey? = { _ in nil }) throws(RequestError) -> Request {
        try decode(FieldReader(view: view), resolveModel: resolveModel)
    }

    /// Decodes a request from a built object (the same rules; what the fuzz target checks the
    /// scanned path against).
    public static func decode(_ object: JSONObject,
                              resolveModel: (String) -> ModelKey? = { _ in nil }) throws(RequestError) -> Request {
        try decode(FieldReader(object: object), resolveModel: resolveModel)
    }

    private static func decode(_ fields: FieldReader, resolveModel: (String) -> ModelKey?) throws(RequestError) -> Request {
        let op = try fields.op()
        try fields.rejectUnknown(op.knownFields)
        switch op {
        case .hello: return .hello(client: try fields.label("client"))
        case .acquire: return try decodeAcquire(fields, resolveModel: resolveModel)
        case .heartbeat: return try decodeHeartbeat(fields)
        case .release:
            let token = try fields.requiredToken("lease")
            let code = try fields.integer("exit_code", in: 0...255)
            let signal = try fields.integer("signal", in: 1...64)
            if code != nil && signal != nil {
                throw fields.fail("signal", "give exit_code or signal, not both: a process ends one way")
            }
            return .release(token, exit: code.map { .code(Int32($0)) } ?? signal.map { .signal(Int32($0)) })
        case .attach:
            return .attach(try fields.requiredToken("lease"),
                           pid: try fields.integer("pid", in: 1...Int64(Int32.max)).map { Int32($0) },
                           pgid: try fields.integer("pgid", in: 1...Int64(Int32.max)).map { Int32($0) })
        case .cancel:
            if let holder = try fields.label("holder") {
                guard fields.value("target") == nil else {
                    throw fields.fail("holder", "cancel takes target (a request of this connection) or holder, not both")
                }
                return .cancelHolder(holder)
            }
            guard let target = fields.value("target"), target.isScalar else {
                throw RequestError(.badRequest, field: "target", "target must be the id of a pending acquire")
            }
            return .cancel(target: RequestKey(target))
        case .status: return .status
        case .pause: return .pause(project: try fields.project(required: true))
        case .resume: return .resume(project: try fields.project(required: true))
        case .report:
            return .report(project: try fields.project(required: true), agent: try fields.requiredLabel("agent"),
                           success: try fields.requiredBool("success"))
        case .throttle: return try decodeThrottle(fields)
        case .unflag: return .unflag(model: try fields.requiredLabel("model"))
        case .record: return .record(try TelemetryFields.decodeRecord(fields))
        case .performance: return .performance(model: try fields.label("model"))
        case .usage: return .usage(session: try fields.requiredLabel("session_id"))
        case .metrics: return .metrics
        case .watch: return .watch
        case .reload: return .reload
        case .park: return .park(try fields.requiredToken("lease"))
        case .unpark:
            return .unpark(try fields.requiredToken("lease"), waitMilliseconds: try fields.milliseconds("wait_ms") ?? 0,
                           notify: try fields.bool("notify") ?? false)
        case .revoke:
            if let fence = try fields.integer("fence", in: 1...Int64.max) { return .revoke(.fence(UInt64(fence))) }
            guard let token = try fields.token("lease") else {
                throw RequestError(.badRequest, field: "lease", "revoke needs a lease token or a fence")
            }
            return .revoke(.token(token))
        }
    }

    private static func decodeAcquire(_ fields: FieldReader,
                                      resolveModel: (String) -> ModelKey?) throws(RequestError) -> Request {
        var mode = Mode.any
        if let name = try fields.string("mode") {
            guard let parsed = Mode(rawValue: name) else {
                throw fields.fail("mode", "mode must be time, issue, mention or any (got \(name))")
            }
            mode = parsed
        }
        var model: ModelKey?
        if let text = try fields.label("model") {
            if text.contains("/") {
                guard let key = ModelKey(parsing: text) else { throw fields.fail("model", "model must be provider/model") }
                model = key
            } else {
                guard let key = resolveModel(text.trimmed) else {
                    throw fields.fail("model", "model \(text) names no provider and no configured provider offers it; use provider/model")
                }
                model = key
            }
        }
        var providers: [String] = []
        for name in try fields.labels("providers") {
            if let problem = Names.labelProblem(name, what: "provider") { throw fields.fail("providers", problem) }
            providers.append(name)
        }
        var workspace: String?
        if let path = try fields.string("workspace") {
            guard let normalised = Names.normaliseWorkspace(path) else {
                throw fields.fail("workspace", "workspace must be a path (non-empty, no control characters, at most \(Names.workspaceBytesMax) bytes)")
            }
            workspace = normalised
        }
        let (pools, poolLimits) = try decodePools(fields)
        let ttlRange = AcquireRequest.ttlRange
        let ttl = try fields.integer("ttl_ms", in: Int64(ttlRange.lowerBound)...Int64(ttlRange.upperBound))
        let admission = AdmissionRequest(
            project: try fields.project(), mode: mode, model: model,
            fallback: ModelKey.parseChain(try fields.labels("fallback")), providers: providers,
            workspace: workspace, tenant: try fields.label("tenant") ?? "local",
            priority: Int(try fields.integer("priority", in: -1_000_000...1_000_000) ?? 0),
            pools: pools, poolLimits: poolLimits)
        let request = AcquireRequest(
            admission, waitMilliseconds: try fields.milliseconds("wait_ms") ?? 0,
            ttlMilliseconds: ttl.map { UInt64($0) }, detach: try fields.bool("detach") ?? false,
            pid: try fields.integer("pid", in: 1...Int64(Int32.max)).map { Int32($0) },
            pgid: try fields.integer("pgid", in: 1...Int64(Int32.max)).map { Int32($0) },
            holder: try fields.label("holder"))
        return .acquire(request, notify: try fields.bool("notify") ?? false)
    }

    /// `pools` (names, as `providers`) and `pool_limits` (an object of limits for pools the
    /// config does not name; each key must be one of `pools`).
    private static func decodePools(_ fields: FieldReader) throws(RequestError) -> ([String], [String: Int]) {
        let pools = try fields.labels("pools")
        // `labels` skips an array's non-strings (as `providers` does); a unit is not taken silently.
        if let array = fields.value("pools")?.arrayValue, array.count != pools.count {
            throw fields.fail("pools", "pools must hold pool names (strings)")
        }
        if pools.count > PoolConfig.perAcquireMax {
            throw fields.fail("pools", "at most \(PoolConfig.perAcquireMax) pools per acquire")
        }
        for pool in pools {
            if let problem = Names.labelProblem(pool, what: "pool name") { throw fields.fail("pools", problem) }
        }
        guard let value = fields.value("pool_limits") else { return (pools, [:]) }
        guard let object = value.objectValue else {
            throw fields.fail("pool_limits", "pool_limits must be an object of pool names and limits ({\"build\": 3})")
        }
        var limits: [String: Int] = [:]
        for (pool, limit) in object.members {
            guard pools.contains(where: { $0.utf8.elementsEqual(pool.utf8) }) else {
                throw fields.fail("pool_limits", "pool_limits names \(pool), which pools does not")
            }
            guard let number = limit.numberValue?.int64, (1...Int64(PoolConfig.limitMax)).contains(number) else {
                throw fields.fail("pool_limits", "a pool's limit is a whole number from 1 to \(PoolConfig.limitMax)")
            }
            limits[pool] = Int(number)
        }
        return (pools, limits)
    }

    private static func decodeHeartbeat(_ fields: FieldReader) throws(RequestError) -> Request {
        if let single = try fields.token("lease") { return .heartbeat([.token(single)], multiple: false) }
        guard let value = fields.value("leases") else {
            throw fields.fail("lease", "heartbeat needs lease (a token) or leases (an array of tokens)")
        }
        guard let array = value.arrayValue else { throw fields.fail("leases", "leases must be an array of tokens") }
        if array.count > heartbeatLeasesMax {
            throw RequestError(.tooMany, field: "leases", "at most \(heartbeatLeasesMax) leases per heartbeat")
        }
        let tokens = array.map { element -> TokenArgument in
            guard let text = element.stringValue, let token = LeaseToken(hex: text) else {
                return .invalid("not a lease token (32 hex digits)")
            }
            return .token(token)
        }
        return .heartbeat(tokens, multiple: true)
    }

    private static func decodeThrottle(_ fields: FieldReader) throws(RequestError) -> Request {
        let provider = try fields.requiredLabel("provider")
        let tenant = try fields.label("tenant") ?? "local"
        if try fields.bool("clear") == true {
            if fields.value("retry_after_ms") != nil || fields.value("retry_after") != nil {
                throw fields.fail("clear", "clear lifts the throttle; it takes no retry_after_ms or retry_after")
            }
            return .clearThrottle(provider: provider, tenant: tenant)
        }
        if let ms = try fields.integer("retry_after_ms", in: 0...Int64(RetryAfter.millisecondsMax)) {
            return .throttle(provider: provider, tenant: tenant, retryAfter: .milliseconds(UInt64(ms)))
        }
        guard let header = fields.value("retry_after") else {
            throw fields.fail("retry_after_ms", "throttle needs retry_after_ms (or retry_after, the provider's Retry-After)")
        }
        switch header {
        case .string(let text): return .throttle(provider: provider, tenant: tenant, retryAfter: .header(text))
        case .number(let number): return .throttle(provider: provider, tenant: tenant, retryAfter: .header(number.text))
        default: throw fields.fail("retry_after", "retry_after must be seconds or an HTTP date")
        }
    }
}
