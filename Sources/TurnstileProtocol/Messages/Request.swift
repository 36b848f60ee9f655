import TurnstileCore

/// A decoded, validated request: what the daemon acts on.
public enum Request: Sendable, Equatable {
    case hello(client: String?)
    case acquire(AcquireRequest, notify: Bool)
    /// One token (`lease`) or several (`leases`, answered with `results`).
    case heartbeat([TokenArgument], multiple: Bool)
    case release(LeaseToken)
    case attach(LeaseToken, pid: Int32?)
    case cancel(target: RequestKey)
    case status
    case pause(project: String)
    case resume(project: String)
    case report(project: String, agent: String, success: Bool)
    case throttle(provider: String, tenant: String, retryAfter: RetryAfter)
    case record(CompletionEvent)
    case performance(model: String?)
    case usage(session: String)
    case metrics
    case watch
    case reload
    case park(LeaseToken)
    case unpark(LeaseToken, waitMilliseconds: UInt64, notify: Bool)
    case revoke(LeaseReference)

    /// The op it came as.
    public var op: Op {
        switch self {
        case .hello: .hello
        case .acquire: .acquire
        case .heartbeat: .heartbeat
        case .release: .release
        case .attach: .attach
        case .cancel: .cancel
        case .status: .status
        case .pause: .pause
        case .resume: .resume
        case .report: .report
        case .throttle: .throttle
        case .record: .record
        case .performance: .performance
        case .usage: .usage
        case .metrics: .metrics
        case .watch: .watch
        case .reload: .reload
        case .park: .park
        case .unpark: .unpark
        case .revoke: .revoke
        }
    }
}

/// One entry of a multi-lease heartbeat: a token, or the reason it is not one.
public enum TokenArgument: Sendable, Equatable {
    case token(LeaseToken)
    case invalid(String)
}

/// What `revoke` names: a token or a fence.
public enum LeaseReference: Sendable, Equatable {
    case token(LeaseToken)
    case fence(UInt64)
}

/// A request `id` reduced to what identifies it, so that `cancel`'s `target` matches the id
/// it names whatever its spelling: strings by content, numbers by value (`1` = `1.0`).
public struct RequestKey: Hashable, Sendable {
    private let canonical: String

    /// The key of a scalar JSON value.
    public init(_ value: JSONValue) {
        switch value {
        case .string(let text): canonical = "s:" + text
        case .number(let number):
            if let int = number.int64 {
                canonical = "n:\(int)"
            } else if let double = number.double, double == double.rounded(), abs(double) < 9.2e18 {
                canonical = "n:\(Int64(double))"
            } else {
                canonical = "n:\(number.double ?? 0)"
            }
        case .bool(let flag): canonical = flag ? "true" : "false"
        default: canonical = "null"
        }
    }
}

/// Why a request could not be decoded: the error code, the field to blame, and a message.
public struct RequestError: Error, Sendable, Equatable {
    public var code: ErrorCode
    public var field: String?
    public var message: String

    public init(_ code: ErrorCode, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }
}
