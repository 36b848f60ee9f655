import Foundation
import TurnstileCore
import TurnstileProtocol

/// One line of the journal: a change to the saved state since the last snapshot. Written by
/// hand with `JSONWriter` (it is on the grant path), read back with `JSONDecoder` (only at
/// start), in the same shapes as the core's `Codable` types.
public enum JournalRecord: Decodable, Equatable {
    case grant(LeaseRecord)
    case change(LeaseRecord)
    case end(fence: UInt64)
    case breaker(project: String, state: CircuitBreaker.ProjectState)
    case throttle(BrokerSnapshot.ThrottleRecord)
    /// An operator lifted a throttle (`throttle` with `clear: true`).
    case unthrottle(tenant: String, provider: String)
    /// An operator lifted a model's subscription-limit flag.
    case unflag(model: String)
    case record(CompletionEvent)

    private enum Keys: String, CodingKey {
        case t, lease, fence, project, failures, tripped, tenant, provider, until, event, model
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        switch try c.decode(String.self, forKey: .t) {
        case "grant": self = .grant(try c.decode(LeaseRecord.self, forKey: .lease))
        case "change": self = .change(try c.decode(LeaseRecord.self, forKey: .lease))
        case "end": self = .end(fence: try c.decode(UInt64.self, forKey: .fence))
        case "breaker":
            self = .breaker(project: try c.decode(String.self, forKey: .project),
                            state: .init(failures: try c.decode(Int.self, forKey: .failures),
                                         tripped: try c.decode(Bool.self, forKey: .tripped)))
        case "throttle":
            self = .throttle(.init(tenant: try c.decode(String.self, forKey: .tenant),
                                   provider: try c.decode(String.self, forKey: .provider),
                                   until: try c.decode(WallTime.self, forKey: .until)))
        case "unthrottle":
            self = .unthrottle(tenant: try c.decode(String.self, forKey: .tenant),
                               provider: try c.decode(String.self, forKey: .provider))
        case "unflag": self = .unflag(model: try c.decode(String.self, forKey: .model))
        case "record": self = .record(try c.decode(CompletionEvent.self, forKey: .event))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .t, in: c, debugDescription: "unknown record \(other)")
        }
    }

    /// Writes a lease record (`grant` or `change`).
    static func writeLease(_ w: inout JSONWriter, change: Bool, _ lease: Lease) {
        w.beginObject()
        w.key("t"); w.string(change ? "change" : "grant")
        w.key("lease")
        w.beginObject()
        w.key("token"); w.hexString(high: lease.token.high, low: lease.token.low)
        w.key("fence"); w.int(lease.fence)
        w.key("request")
        writeRequest(&w, lease.request)
        if let model = lease.model { w.key("model"); w.string(model.description) }
        if let route = lease.route { w.key("route"); w.string(route.rawValue) }
        if let holder = lease.holder { w.key("holder"); w.string(holder) }
        if let pid = lease.pid { w.key("pid"); w.int(pid) }
        if let pgid = lease.pgid { w.key("pgid"); w.int(pgid) }
        if let drain = lease.drain { w.key("draining"); w.string(drain.cause.rawValue) }
        w.key("ttl_ms"); w.int(lease.ttlMilliseconds)
        if lease.parked { w.key("parked"); w.bool(true) }
        w.endObject()
        w.endObject()
        w.newline()
    }

    /// The admission request with its defaults left out (`AdmissionRequest`'s decoder puts
    /// them back): a grant is journaled on the hot path, and most fields are usually default.
    private static func writeRequest(_ w: inout JSONWriter, _ request: AdmissionRequest) {
        w.beginObject()
        if request.project != Names.globalProject { w.key("project"); w.string(request.project) }
        if request.mode != .any { w.key("mode"); w.string(request.mode.rawValue) }
        if let model = request.model { w.key("model"); w.string(model.description) }
        if !request.fallback.isEmpty {
            w.key("fallback")
            w.beginArray()
            for key in request.fallback { w.string(key.description) }
            w.endArray()
        }
        if !request.providers.isEmpty {
            w.key("providers")
            w.beginArray()
            for provider in request.providers { w.string(provider) }
            w.endArray()
        }
        if let workspace = request.workspace { w.key("workspace"); w.string(workspace) }
        if request.tenant != "local" { w.key("tenant"); w.string(request.tenant) }
        if request.priority != 0 { w.key("priority"); w.int(request.priority) }
        if !request.pools.isEmpty {
            w.key("pools")
            w.beginArray()
            for pool in request.pools { w.string(pool) }
            w.endArray()
        }
        if !request.poolLimits.isEmpty {
            w.key("pool_limits")
            w.beginObject()
            for (pool, limit) in request.poolLimits.sorted(by: { $0.key < $1.key }) {
                w.dynamicKey(pool)
                w.int(limit)
            }
            w.endObject()
        }
        w.endObject()
    }

    /// Writes an `end` record.
    static func writeEnd(_ w: inout JSONWriter, fence: UInt64) {
        w.beginObject()
        w.key("t"); w.string("end")
        w.key("fence"); w.int(fence)
        w.endObject()
        w.newline()
    }

    /// Writes a `breaker` record.
    static func writeBreaker(_ w: inout JSONWriter, project: String, state: CircuitBreaker.ProjectState) {
        w.beginObject()
        w.key("t"); w.string("breaker")
        w.key("project"); w.string(project)
        w.key("failures"); w.int(state.failures)
        w.key("tripped"); w.bool(state.tripped)
        w.endObject()
        w.newline()
    }

    /// Writes a `throttle` record.
    static func writeThrottle(_ w: inout JSONWriter, tenant: String, provider: String, until: WallTime) {
        w.beginObject()
        w.key("t"); w.string("throttle")
        w.key("tenant"); w.string(tenant)
        w.key("provider"); w.string(provider)
        w.key("until"); w.int(until.unixMilliseconds)
        w.endObject()
        w.newline()
    }

    /// Writes an `unthrottle` record: the throttle on (tenant, provider) was lifted.
    static func writeUnthrottle(_ w: inout JSONWriter, tenant: String, provider: String) {
        w.beginObject()
        w.key("t"); w.string("unthrottle")
        w.key("tenant"); w.string(tenant)
        w.key("provider"); w.string(provider)
        w.endObject()
        w.newline()
    }

    /// Writes an `unflag` record: a model's subscription-limit flag was lifted.
    static func writeUnflag(_ w: inout JSONWriter, model: String) {
        w.beginObject()
        w.key("t"); w.string("unflag")
        w.key("model"); w.string(model)
        w.endObject()
        w.newline()
    }

    /// Writes a `record` (telemetry event) record.
    static func writeEvent(_ w: inout JSONWriter, _ event: CompletionEvent) {
        w.beginObject()
        w.key("t"); w.string("record")
        w.key("event")
        w.beginObject()
        w.key("model"); w.string(event.model)
        if let session = event.sessionID { w.key("session_id"); w.string(session) }
        w.key("completed_at"); w.int(event.completedAt.unixMilliseconds)
        w.key("latency_ms"); w.int(event.latencyMilliseconds)
        w.key("success"); w.bool(event.success)
        w.key("tokens")
        w.beginObject()
        w.key("total"); w.int(event.tokens.total)
        w.key("input"); w.int(event.tokens.input)
        w.key("output"); w.int(event.tokens.output)
        w.key("reasoning"); w.int(event.tokens.reasoning)
        w.key("cache_read"); w.int(event.tokens.cacheRead)
        w.key("cache_write"); w.int(event.tokens.cacheWrite)
        w.endObject()
        w.key("cost_usd"); w.double(event.costUSD)
        if let error = event.error { w.key("error"); w.string(error) }
        if let status = event.status { w.key("status"); w.int(status) }
        w.endObject()
        w.endObject()
        w.newline()
    }
}
