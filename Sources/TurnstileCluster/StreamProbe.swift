import GRPCCore
import Synchronization

/// Tells whether one call's request got as far as an HTTP/2 stream. gRPC reports "unavailable"
/// and "deadline exceeded" alike whether the request never left this host (no connection: the
/// member is down, or stopped and never answered the handshake) or reached the member and was
/// cut off; only the first is certainly without effect, and only then may a write go to another
/// endpoint. `ProbedTransport` raises the flag of the call's probe (a task-local: gRPC runs the
/// stream in child tasks of the call) when the transport hands the call a stream.
final class StreamProbe: Sendable {
    @TaskLocal static var current: StreamProbe?

    private let opened = Atomic<Bool>(false)

    var streamOpened: Bool { opened.load(ordering: .acquiring) }

    func markOpened() { opened.store(true, ordering: .releasing) }
}

/// A client transport that forwards everything to `Wrapped` and marks the current call's
/// `StreamProbe` when a stream is open.
struct ProbedTransport<Wrapped: ClientTransport>: ClientTransport {
    typealias Bytes = Wrapped.Bytes

    let wrapped: Wrapped

    var retryThrottle: RetryThrottle? { wrapped.retryThrottle }

    func connect() async throws { try await wrapped.connect() }

    func beginGracefulShutdown() { wrapped.beginGracefulShutdown() }

    func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: (_ stream: RPCStream<Inbound, Outbound>, _ context: ClientContext) async throws -> T
    ) async throws -> T {
        let probe = StreamProbe.current
        return try await wrapped.withStream(descriptor: descriptor, options: options) { stream, context in
            probe?.markOpened()
            return try await closure(stream, context)
        }
    }

    func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
        wrapped.config(forMethod: descriptor)
    }
}
