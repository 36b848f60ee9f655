import GRPCCore
import NIOCore
import NIOPosix
import Synchronization

/// An etcd v3 client for limits shared across hosts (see the README, "Shared limits"): the
/// daemon's host lease, its one-transaction claims, their read-back and release.
///
/// **Threads.** The client owns one NIO event loop thread, on which its gRPC connections (one
/// per endpoint) run. It is usable from any thread: the async methods from any task, the
/// completion-handler methods (`EtcdClient+Completion.swift`) from a thread that is not async at
/// all, such as the daemon's libuv loop; their completions run on the client's loop thread, so
/// they must not block (hand the result to the libuv loop, e.g. with `uv_async_send`).
///
/// **Deadlines and failures.** Every call has a deadline (`Configuration.timeout` unless the
/// call gives its own). It fails with an `EtcdError` whose `outcome` says whether it may have
/// taken effect: `.notApplied` when nothing was sent or etcd refused the request before
/// proposing it, `.unknown` when a write reached a member and then timed out or lost its
/// connection (the caller reads back).
///
/// **Endpoints.** A call goes to the endpoint that last answered; when that one fails in a way
/// that certainly had no effect (unreachable, no leader), the same call is sent to the next,
/// round after round until its deadline. A write whose outcome is unknown is never sent again:
/// the error goes back to the caller, and the next call starts at another endpoint.
public final class EtcdClient: Sendable {
    /// Deadlines, reconnection and connection health.
    public struct Configuration: Sendable {
        /// The deadline of a call that names none.
        public var timeout: Duration = .seconds(2)
        /// Between reconnection attempts to a member that is down: from `initial`, times 1.6
        /// each time, up to `max` (gRPC's defaults, 1 s and 2 min, would keep a restarted member
        /// unused for minutes).
        public var reconnectBackoff: (initial: Duration, max: Duration) = (.milliseconds(100), .seconds(2))
        /// HTTP/2 pings on connections with calls open, to find a member that vanished (nil: none).
        public var keepaliveInterval: Duration? = .seconds(10)
        public var keepaliveTimeout: Duration = .seconds(5)
        /// How long an endpoint that failed goes to the back of the order.
        public var failurePenalty: Duration = .seconds(5)
        /// The pause before another round when every endpoint failed without effect.
        public var roundPause: Duration = .milliseconds(50)
        /// Calls after which a member's connection is replaced (see `EtcdEndpoint`): etcd sends
        /// about one HTTP/2 PING per call, and swift-nio-http2 drops a connection that receives
        /// more than 200 within 30 s.
        public var callsPerConnection = 150
        /// The files for `https://` endpoints; plain `http://` ones ignore them.
        public var tls = TLS()

        public init() {}
    }

    /// How to speak TLS to `https://` endpoints (the files etcdctl's `--cacert`, `--cert` and
    /// `--key` name): PEM files, read when the client is made.
    public struct TLS: Sendable, Equatable {
        /// The CAs that sign the members' certificates; nil: the system's trust roots.
        public var caFile: String?
        /// This client's certificate and its key, for members that require one
        /// (`--client-cert-auth`); both or neither.
        public var certFile: String?
        public var keyFile: String?

        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    public let endpoints: [String]
    public let configuration: Configuration

    let loop: any EventLoop
    private let group: MultiThreadedEventLoopGroup
    let members: [EtcdEndpoint]
    private let state: Mutex<State>

    /// Connects to `endpoints` (`http://HOST:PORT` or `https://HOST:PORT`, one per member; at
    /// least one). Each member
    /// gets a connection at once; a lost one is made again (with `reconnectBackoff`).
    public init(endpoints: [String], configuration: Configuration = Configuration()) throws(EtcdError) {
        guard !endpoints.isEmpty else {
            throw EtcdError(outcome: .notApplied, reason: .rejected, endpoint: nil, message: "no endpoint given")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let members: [EtcdEndpoint]
        do {
            members = try endpoints.map { url throws(EtcdError) in
                try EtcdEndpoint(url: url, group: group, configuration: configuration)
            }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.endpoints = endpoints
        self.configuration = configuration
        self.group = group
        self.loop = group.next()
        self.members = members
        state = Mutex(State(failedAt: Array(repeating: nil, count: members.count)))
    }

    /// Waits for the calls under way, closes the connections and stops the loop thread. Calls
    /// made afterwards fail with `.closed`.
    public func close() async {
        let busy = state.withLock { state in
            state.closed = true
            return state.inFlight > 0
        }
        if busy {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    if state.inFlight == 0 { return true }
                    state.drained.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        for member in members { await member.close() }
        try? await group.shutdownGracefully()
    }

    /// Sends one call, failing over between endpoints as the type's documentation says.
    /// `mutates` is false for calls that change nothing (reads) or that may be repeated safely
    /// (a lease renewal): those fail over after any failure, a write only after one that
    /// certainly had no effect.
    func perform<Result: Sendable>(
        mutates: Bool, timeout: Duration?,
        _ attempt: @Sendable (EtcdConnection, CallOptions) async throws -> Result
    ) async throws(EtcdError) -> Result {
        guard enter() else { throw EtcdError.clientClosed }
        defer { leave() }
        let order = state.withLock { $0.order(now: .now, penalty: configuration.failurePenalty) }
        let deadline = ContinuousClock.now + (timeout ?? configuration.timeout)
        var last: EtcdError?
        while true {
            for index in order {
                let remaining = deadline - .now
                guard remaining > .zero else { throw Self.expired(last) }
                var options = CallOptions.defaults
                options.timeout = remaining
                let probe = StreamProbe()
                do {
                    let result = try await StreamProbe.$current.withValue(probe) {
                        try await members[index].withConnection { try await attempt($0, options) }
                    }
                    state.withLock { $0.succeeded(index) }
                    return result
                } catch {
                    let failure = EtcdError.classify(error, streamOpened: probe.streamOpened, mutates: mutates,
                                                     endpoint: members[index].url)
                    state.withLock { $0.failed(index, failure, now: .now) }
                    guard failure.allowsFailover else { throw failure }
                    last = failure
                }
            }
            let pause = min(configuration.roundPause, deadline - .now)
            if pause > .zero { try? await Task.sleep(for: pause) }
        }
    }

    /// The error of a call whose deadline passed between attempts that all had no effect.
    private static func expired(_ last: EtcdError?) -> EtcdError {
        var error = last ?? EtcdError(outcome: .notApplied, reason: .timedOut, endpoint: nil, message: "deadline passed")
        error.message = "deadline passed; last attempt: \(error.message)"
        return error
    }

    /// Counts a call (or a completion waiting for the loop) as under way until `leave`.
    func enter() -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.inFlight += 1
            return true
        }
    }

    func leave() {
        let waiters = state.withLock { state in
            state.inFlight -= 1
            guard state.inFlight == 0 else { return [CheckedContinuation<Void, Never>]() }
            defer { state.drained = [] }
            return state.drained
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Where calls go, and what is under way.
    private struct State {
        var preferred = 0
        var failedAt: [ContinuousClock.Instant?]
        var closed = false
        var inFlight = 0
        var drained: [CheckedContinuation<Void, Never>] = []

        /// Every endpoint, starting with the preferred one; those that failed within `penalty` last.
        func order(now: ContinuousClock.Instant, penalty: Duration) -> [Int] {
            let ring = (0..<failedAt.count).map { (preferred + $0) % failedAt.count }
            let failedRecently = { (index: Int) in failedAt[index].map { now - $0 < penalty } ?? false }
            return ring.filter { !failedRecently($0) } + ring.filter(failedRecently)
        }

        mutating func succeeded(_ index: Int) {
            preferred = index
            failedAt[index] = nil
        }

        /// A failure that says something about the member moves calls away from it.
        mutating func failed(_ index: Int, _ error: EtcdError, now: ContinuousClock.Instant) {
            guard [.unreachable, .noLeader, .timedOut, .failed].contains(error.reason) else { return }
            failedAt[index] = now
            if preferred == index { preferred = (index + 1) % failedAt.count }
        }
    }
}
