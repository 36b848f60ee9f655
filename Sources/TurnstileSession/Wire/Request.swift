import TurnstileCore
import TurnstileProtocol

/// A decoded, validated request: what the daemon acts on.
public enum Request: Sendable, Equatable {
    case hello(client: String?)
    case acquire(AcquireRequest, notify: Bool)
    /// One token (`lease`) or several (`leases`, answered with `results`).
    case heartbeat([TokenArgument], multiple: Bool)
    case release(LeaseToken, exit: ExitStatus?)
    case attach(LeaseToken, pid: Int32?, pgid: Int32?)
    case cancel(target: RequestKey)
    /// `cancel` with `holder`: every waiting acquire with that holder label, on the peer's own
    /// connections (an admin's: anyone's).
    case cancelHolder(String)
    case status
    case pause(project: String)
    case resume(project: String)
    case report(project: String, agent: String, success: Bool)
    case throttle(provider: String, tenant: String, retryAfter: RetryAfter)
    /// `throttle` with `clear: true`: lift the throttle now.
    case clearThrottle(provider: String, tenant: String)
    case unflag(model: String)
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
