import GRPCCore

/// Why an etcd call failed and, above all, whether it may have taken effect. A claim whose
/// outcome is unknown (its transaction reached etcd, then the deadline passed or the connection
/// dropped) may have committed: the caller reads the claim keys back before granting or retrying.
/// A call that was not applied can be sent again at once.
public struct EtcdError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Whether the call changed anything.
    public enum Outcome: Hashable, Sendable {
        /// It had no effect: it never reached a member, or etcd refused it before proposing it.
        /// Reads always fail this way.
        case notApplied
        /// It reached etcd and may or may not have been applied: read back before acting.
        case unknown
    }

    /// What went wrong.
    public enum Reason: Hashable, Sendable {
        /// The call's deadline passed (or etcd's own request timeout did).
        case timedOut
        /// No member could be reached, or the connection to it was lost.
        case unreachable
        /// The members reached had no leader (quorum lost, or an election under way).
        case noLeader
        /// The lease has expired, was revoked, or never existed.
        case leaseNotFound
        /// etcd refused the request as such (bad argument, too many operations, too many
        /// requests, compacted revision...): sending it again will not help.
        case rejected
        /// Any other failure etcd or the client library reported.
        case failed
        /// The calling task was cancelled.
        case cancelled
        /// The client was closed.
        case closed
    }

    public var outcome: Outcome
    public var reason: Reason
    /// The endpoint of the last attempt, if one was made.
    public var endpoint: String?
    public var message: String

    public init(outcome: Outcome, reason: Reason, endpoint: String?, message: String) {
        self.outcome = outcome
        self.reason = reason
        self.endpoint = endpoint
        self.message = message
    }

    /// A call made after `EtcdClient.close()`.
    static let clientClosed = EtcdError(outcome: .notApplied, reason: .closed, endpoint: nil, message: "the client is closed")

    public var description: String {
        "etcd \(reason) (\(outcome == .unknown ? "outcome unknown" : "not applied"))"
            + (endpoint.map { " at \($0)" } ?? "") + ": \(message)"
    }

    /// Whether another endpoint may serve the same call within its deadline: the call had no
    /// effect and failed for a reason particular to the member it reached.
    var allowsFailover: Bool {
        outcome == .notApplied && [.unreachable, .noLeader, .timedOut, .failed].contains(reason)
    }
}

extension EtcdError {
    /// Classifies a failure of one attempt. `streamOpened` says whether the request got as far as
    /// an HTTP/2 stream (see `StreamProbe`): if not, nothing was sent and nothing can have been
    /// applied. If so, only a refusal etcd makes before proposing the request is certain.
    /// `mutates` is false for reads, whose failures never leave anything to resolve.
    static func classify(_ error: any Error, streamOpened: Bool, mutates: Bool, endpoint: String) -> EtcdError {
        if let error = error as? EtcdError { return error }
        let sent = streamOpened && mutates
        let maybe: Outcome = sent ? .unknown : .notApplied
        guard let rpc = error as? RPCError else {
            let reason: Reason = error is CancellationError ? .cancelled : .failed
            return EtcdError(outcome: maybe, reason: reason, endpoint: endpoint, message: "\(error)")
        }
        let (outcome, reason) = classify(code: rpc.code, message: rpc.message, maybe: maybe)
        return EtcdError(outcome: outcome, reason: reason, endpoint: endpoint, message: "\(rpc.code): \(rpc.message)")
    }

    /// etcd's errors (the "etcdserver: ..." messages of its gRPC statuses) and the transport's.
    private static func classify(code: RPCError.Code, message: String, maybe: Outcome) -> (Outcome, Reason) {
        switch code {
        case .deadlineExceeded:
            return (maybe, .timedOut)
        case .unavailable:
            // Refused before proposing: the member has no leader (we ask for one with the
            // `hasleader` metadata), or is stopping or unhealthy.
            if message.contains("etcdserver: no leader") { return (.notApplied, .noLeader) }
            // Proposed, then etcd gave up waiting for it: it may still commit.
            if message.contains("etcdserver: request timed out") { return (maybe, .timedOut) }
            if message.contains("etcdserver: leader changed") { return (maybe, .noLeader) }
            if message.hasPrefix("etcdserver:") { return (maybe, .failed) }
            return (maybe, .unreachable)
        case .notFound where message.contains("lease not found"):
            return (.notApplied, .leaseNotFound)
        case .failedPrecondition where message.contains("etcdserver: not leader"):
            return (.notApplied, .noLeader)
        case .invalidArgument, .failedPrecondition, .outOfRange, .resourceExhausted, .alreadyExists,
             .notFound, .permissionDenied, .unauthenticated, .unimplemented:
            return (.notApplied, .rejected)
        case .cancelled:
            return (maybe, .cancelled)
        default:
            return (maybe, .failed)
        }
    }
}
