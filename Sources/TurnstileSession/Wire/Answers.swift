import TurnstileCore
import TurnstileProtocol

/// Writers of answer and event lines (protocol/PROTOCOL.md). Every line is one JSON object ending in `\n`;
/// answers start with the echoed `id` (omitted when the request had none) and `ok`; events
/// start with `event` and never carry `ok`.
public enum Answers {
    /// Opens a success answer: `{"id":…,"ok":true`. The caller adds fields and calls `close`.
    public static func beginSuccess(_ w: inout JSONWriter, id: ArraySlice<UInt8>?) {
        w.beginObject()
        if let id {
            w.key("id")
            w.raw(id)
        }
        w.key("ok")
        w.bool(true)
    }

    /// Closes an answer or event and ends its line.
    public static func close(_ w: inout JSONWriter) {
        w.endObject()
        w.newline()
    }

    /// `{"id":…,"ok":true}`.
    public static func success(_ w: inout JSONWriter, id: ArraySlice<UInt8>?) {
        beginSuccess(&w, id: id)
        close(&w)
    }

    /// A failure: `{"id":…,"ok":false,"error":code,"message":…}` plus `field` for
    /// `bad_request`, and the refusal's `reason`, `limit`, `in_use`, `retry_after_ms` (or a
    /// bare `reason` that is no limit's, such as `storage`).
    public static func failure(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, code: ErrorCode, message: String,
                               field: String? = nil, refusal: Refusal? = nil, reason: String? = nil) {
        w.beginObject()
        if let id {
            w.key("id")
            w.raw(id)
        }
        w.key("ok")
        w.bool(false)
        w.key("error")
        w.string(code.rawValue)
        w.key("message")
        w.string(message)
        if let field {
            w.key("field")
            w.string(field)
        }
        if let refusal {
            writeRefusal(&w, refusal)
        } else if let reason {
            w.key("reason")
            w.string(reason)
        }
        close(&w)
    }

    /// The fields of a refusal: `reason`, then `limit`, `in_use`, `retry_after_ms` where known.
    public static func writeRefusal(_ w: inout JSONWriter, _ refusal: Refusal) {
        w.key("reason")
        w.string(refusal.reason.rawValue)
        if let limit = refusal.limit {
            w.key("limit")
            w.int(limit)
        }
        if let inUse = refusal.inUse {
            w.key("in_use")
            w.int(inUse)
        }
        if let retry = refusal.retryAfterMilliseconds {
            w.key("retry_after_ms")
            w.int(retry)
        }
    }

    /// A refusal as the answer of an acquire that did not wait: `unavailable`.
    public static func refused(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, _ refusal: Refusal) {
        failure(&w, id: id, code: .unavailable, message: refusal.detail, refusal: refusal)
    }

    /// A granted acquire or unpark: `lease`, `fence`, `ttl_ms`, `model`, `route`,
    /// `waited_ms`, plus `project` and `mode` for the record; for a lease holding shared
    /// capacity, `cluster_fence` and, under `on_loss = "revoke"`, `valid_until_ms`
    /// (protocol/CLUSTER.md §6).
    public static func granted(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, _ lease: Lease,
                               validUntilMilliseconds: UInt64? = nil) {
        beginSuccess(&w, id: id)
        w.key("lease")
        w.hexString(high: lease.token.high, low: lease.token.low)
        w.key("fence")
        w.int(lease.fence)
        w.key("ttl_ms")
        w.int(lease.ttlMilliseconds)
        w.key("model")
        w.string(lease.model?.description)
        w.key("route")
        w.string(lease.route?.rawValue)
        w.key("waited_ms")
        w.int(lease.waitedMilliseconds)
        w.key("project")
        w.string(lease.request.project)
        w.key("mode")
        w.string(lease.request.mode.rawValue)
        if let clusterFence = lease.clusterFence {
            w.key("cluster_fence")
            w.int(clusterFence)
            if let validUntilMilliseconds {
                w.key("valid_until_ms")
                w.int(validUntilMilliseconds)
            }
        }
        close(&w)
    }

    /// The event an `acquire` with `notify: true` gets when it has to wait.
    public static func queued(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, position: Int, _ refusal: Refusal) {
        w.beginObject()
        w.key("event")
        w.string("queued")
        if let id {
            w.key("id")
            w.raw(id)
        }
        w.key("position")
        w.int(position)
        writeRefusal(&w, refusal)
        close(&w)
    }

    /// An event to a lease's own connection (`expired`, `revoked`): it carries the token.
    public static func leaseEvent(_ w: inout JSONWriter, name: String, _ lease: Lease) {
        w.beginObject()
        w.key("event")
        w.string(name)
        w.key("lease")
        w.hexString(high: lease.token.high, low: lease.token.low)
        w.key("fence")
        w.int(lease.fence)
        close(&w)
    }

    /// A `watch` event about a lease (`granted`, `released`, `draining`, `expired`, `revoked`;
    /// protocol/PROTOCOL.md §9.3), never with the token. `released` and `draining` carry the
    /// `cause` (with `exit_code` or `signal` when the release said); a `released` with cause
    /// `drained` says what ended the lease (`ended_by`) and how long its group took to go.
    public static func watchLease(_ w: inout JSONWriter, name: String, _ lease: Lease, cause: LeaseEndCause? = nil,
                                  drainedMilliseconds: UInt64? = nil) {
        w.beginObject()
        w.key("event")
        w.string(name)
        w.key("fence")
        w.int(lease.fence)
        w.key("project")
        w.string(lease.request.project)
        w.key("mode")
        w.string(lease.request.mode.rawValue)
        w.key("model")
        w.string(lease.model?.description)
        w.key("holder")
        w.string(lease.holder)
        if let clusterFence = lease.clusterFence {
            w.key("cluster_fence")
            w.int(clusterFence)
        }
        if name == "granted" && !lease.request.pools.isEmpty {
            w.key("pools")
            w.beginArray()
            for pool in lease.request.pools { w.string(pool) }
            w.endArray()
        }
        if let cause, name == "released" || name == "draining" {
            w.key("cause")
            w.string(cause.rawValue)
            switch lease.exit {
            case .code(let code)?: w.key("exit_code"); w.int(code)
            case .signal(let signal)?: w.key("signal"); w.int(signal)
            case nil: break
            }
        }
        if let drain = lease.drain {
            if name == "draining" {
                w.key("pgid"); w.int(lease.pgid ?? 0)
            } else if cause == .drained {
                w.key("ended_by"); w.string(drain.cause.rawValue)
                if let drainedMilliseconds { w.key("drained_ms"); w.int(drainedMilliseconds) }
            }
        }
        close(&w)
    }

    /// A `watch` event about a project (`paused`, `resumed`).
    public static func watchProject(_ w: inout JSONWriter, name: String, project: String) {
        w.beginObject()
        w.key("event")
        w.string(name)
        w.key("project")
        w.string(project)
        close(&w)
    }

    /// The `tripped` watch event.
    public static func watchTripped(_ w: inout JSONWriter, project: String, failures: Int) {
        w.beginObject()
        w.key("event")
        w.string("tripped")
        w.key("project")
        w.string(project)
        w.key("failures")
        w.int(failures)
        close(&w)
    }

    /// The `throttled` watch event.
    /// `{"event":"throttle_cleared","provider":…,"tenant":…}`: an operator lifted a throttle.
    public static func watchThrottleCleared(_ w: inout JSONWriter, provider: String, tenant: String) {
        w.beginObject()
        w.key("event"); w.string("throttle_cleared")
        w.key("provider"); w.string(provider)
        w.key("tenant"); w.string(tenant)
        close(&w)
    }

    /// `{"event":"cluster_lost","deadline_ms":…}`: no new grant of shared capacity until the
    /// cluster is back; the units held are this host's for `deadline_ms` more at most
    /// (protocol/CLUSTER.md §5 and §6).
    public static func watchClusterLost(_ w: inout JSONWriter, deadlineMilliseconds: UInt64) {
        w.beginObject()
        w.key("event"); w.string("cluster_lost")
        w.key("deadline_ms"); w.int(deadlineMilliseconds)
        close(&w)
    }

    /// `{"event":"cluster_restored"}`: grants of shared capacity resume.
    public static func watchClusterRestored(_ w: inout JSONWriter) {
        w.beginObject()
        w.key("event"); w.string("cluster_restored")
        close(&w)
    }

    /// `{"event":"unflagged","model":…}`: an operator lifted a subscription-limit flag.
    public static func watchUnflagged(_ w: inout JSONWriter, model: String) {
        w.beginObject()
        w.key("event"); w.string("unflagged")
        w.key("model"); w.string(model)
        close(&w)
    }

    public static func watchThrottled(_ w: inout JSONWriter, provider: String, tenant: String, retryAfterMilliseconds: UInt64) {
        w.beginObject()
        w.key("event")
        w.string("throttled")
        w.key("provider")
        w.string(provider)
        w.key("tenant")
        w.string(tenant)
        w.key("retry_after_ms")
        w.int(retryAfterMilliseconds)
        close(&w)
    }
}
