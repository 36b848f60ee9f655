#if canImport(Glibc)
import Glibc
#endif
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOCore
import Synchronization

/// One HTTP/2 connection to a member, with the generated etcd clients over it.
final class EtcdConnection: Sendable {
    typealias Transport = ProbedTransport<HTTP2ClientTransport.Posix>

    let url: String
    let grpc: GRPCClient<Transport>
    let kv: Etcdserverpb_KV.Client<Transport>
    let lease: Etcdserverpb_Lease.Client<Transport>
    /// `runConnections()`: it returns once the connection has shut down.
    let running: Task<Void, Never>

    init(url: String, transport: HTTP2ClientTransport.Posix) {
        self.url = url
        let grpc = GRPCClient(transport: ProbedTransport(wrapped: transport))
        self.grpc = grpc
        kv = Etcdserverpb_KV.Client(wrapping: grpc)
        lease = Etcdserverpb_Lease.Client(wrapping: grpc)
        running = Task { try? await grpc.runConnections() }
    }
}

/// One etcd member: its URL and a connection of its own. The client keeps one per member rather
/// than one load-balanced gRPC channel so that it decides itself where a call goes and, above
/// all, when a failed call may go elsewhere (only when it certainly had no effect).
///
/// The connection is replaced every `Configuration.callsPerConnection` calls. etcd's gRPC server
/// sends an HTTP/2 PING with nearly every request it receives (gRPC-Go's flow-control
/// estimator), and swift-nio-http2 1.46 closes a connection that receives more than 200 PING or
/// SETTINGS frames within 30 s as abusive (a limit grpc-swift-nio-transport 2.9.2 does not let
/// its users raise), failing the calls on it with an unknown outcome. The next connection is
/// opened `sparePeriod` calls ahead, so the switch waits for no handshake. The old one is shut
/// down only once the last call given it has finished: shutting a gRPC client down while a call
/// is still opening its stream on it fails that call ("stream unexpectedly closed").
final class EtcdEndpoint: Sendable {
    let url: String
    private let makeTransport: @Sendable () throws -> HTTP2ClientTransport.Posix
    private let callsPerConnection: Int
    private let state: Mutex<State>

    private struct State {
        var current: EtcdConnection
        /// Calls given the current connection.
        var started = 0
        var spare: EtcdConnection?
        /// Calls under way, per connection.
        var active: [ObjectIdentifier: Int] = [:]
        /// Replaced connections that still have calls under way.
        var replaced: [ObjectIdentifier: EtcdConnection] = [:]
        /// Connections shut down and still closing.
        var closing: [ObjectIdentifier: Task<Void, Never>] = [:]
    }

    init(url: String, group: any EventLoopGroup, configuration: EtcdClient.Configuration) throws(EtcdError) {
        guard let target = Self.target(url) else {
            throw EtcdError(outcome: .notApplied, reason: .rejected, endpoint: url,
                            message: "not an endpoint: expected http://HOST:PORT or https://HOST:PORT")
        }
        let security = try Self.security(url, configuration.tls)
        let config = HTTP2ClientTransport.Posix.Config.defaults { config in
            config.backoff = .init(initial: configuration.reconnectBackoff.initial,
                                   max: configuration.reconnectBackoff.max, multiplier: 1.6, jitter: 0.2)
            // HTTP/2 pings find a connection whose member vanished without a FIN. Only while
            // calls are open: etcd closes connections that ping when idle, or more often than
            // every 5 s (its --grpc-keepalive-min-time).
            config.connection.keepalive = configuration.keepaliveInterval.map {
                .init(time: $0, timeout: configuration.keepaliveTimeout, allowWithoutCalls: false)
            }
        }
        makeTransport = {
            try HTTP2ClientTransport.Posix(target: target, transportSecurity: security, config: config, eventLoopGroup: group)
        }
        let first: HTTP2ClientTransport.Posix
        do {
            first = try makeTransport()
        } catch {
            throw EtcdError(outcome: .notApplied, reason: .rejected, endpoint: url, message: "\(error)")
        }
        self.url = url
        callsPerConnection = max(configuration.callsPerConnection, 2)
        state = Mutex(State(current: EtcdConnection(url: url, transport: first)))
    }

    /// How many calls before the budget runs out the next connection is opened.
    private var sparePeriod: Int { min(50, callsPerConnection / 2) }

    /// Runs one call on the current connection, counted against its budget and as under way
    /// until it returns.
    func withConnection<T>(_ call: (EtcdConnection) async throws -> T) async throws -> T {
        let connection = take()
        defer { finished(connection) }
        return try await call(connection)
    }

    private func take() -> EtcdConnection {
        state.withLock { state in
            state.started += 1
            if state.started >= callsPerConnection - sparePeriod, state.spare == nil {
                // The member's target resolved once already: a transport for it can be made again.
                state.spare = (try? makeTransport()).map { EtcdConnection(url: url, transport: $0) }
            }
            if state.started > callsPerConnection, let spare = state.spare {
                let old = state.current
                if state.active[ObjectIdentifier(old)] == nil {
                    shutDown(old, &state)
                } else {
                    state.replaced[ObjectIdentifier(old)] = old
                }
                state.current = spare
                state.spare = nil
                state.started = 1
            }
            state.active[ObjectIdentifier(state.current), default: 0] += 1
            return state.current
        }
    }

    private func finished(_ connection: EtcdConnection) {
        state.withLock { state in
            let id = ObjectIdentifier(connection)
            guard let count = state.active[id], count > 1 else {
                state.active[id] = nil
                if let replaced = state.replaced.removeValue(forKey: id) { shutDown(replaced, &state) }
                return
            }
            state.active[id] = count - 1
        }
    }

    /// Shuts a connection down (it closes once its streams are done) and keeps its closing task
    /// until it has closed.
    private func shutDown(_ connection: EtcdConnection, _ state: inout State) {
        connection.grpc.beginGracefulShutdown()
        let id = ObjectIdentifier(connection)
        state.closing[id] = Task { [weak self] in
            await connection.running.value
            self?.state.withLock { _ = $0.closing.removeValue(forKey: id) }
        }
    }

    /// Closes every connection (the client calls it once no call is under way).
    func close() async {
        let closing = state.withLock { state in
            for connection in [state.current] + (state.spare.map { [$0] } ?? []) + state.replaced.values {
                shutDown(connection, &state)
            }
            state.replaced = [:]
            state.spare = nil
            return Array(state.closing.values)
        }
        for task in closing { await task.value }
    }

    /// Plain HTTP/2 for `http://`; for `https://`, TLS with the server's certificate fully
    /// verified against `tls.caFile` (else the system's roots), offering `tls.certFile` when set.
    /// The files are checked here, so a missing or unreadable one fails the client at once
    /// rather than every connection later.
    static func security(_ url: String, _ tls: EtcdClient.TLS) throws(EtcdError) -> HTTP2ClientTransport.Posix.TransportSecurity {
        guard url.hasPrefix("https://") else { return .plaintext }
        for (what, path) in [("ca_file", tls.caFile), ("cert_file", tls.certFile), ("key_file", tls.keyFile)] {
            guard let path else { continue }
            guard access(path, R_OK) == 0 else {
                throw EtcdError(outcome: .notApplied, reason: .rejected, endpoint: url, message: "\(what) \(path) cannot be read")
            }
        }
        guard (tls.certFile == nil) == (tls.keyFile == nil) else {
            throw EtcdError(outcome: .notApplied, reason: .rejected, endpoint: url,
                            message: "a client certificate needs its key, and a key its certificate")
        }
        return .tls { config in
            if let ca = tls.caFile { config.trustRoots = .certificates([.file(path: ca, format: .pem)]) }
            if let cert = tls.certFile, let key = tls.keyFile {
                config.certificateChain = [.file(path: cert, format: .pem)]
                config.privateKey = .file(path: key, format: .pem)
            }
        }
    }

    /// `http://HOST:PORT`, `https://HOST:PORT` (or `HOST:PORT`): an IPv4 address, `[IPv6]`, or a
    /// name resolved by DNS.
    static func target(_ url: String) -> (any ResolvableTarget & Sendable)? {
        var rest = Substring(url)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) } else if rest.hasPrefix("https://") { rest = rest.dropFirst(8) }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
              (1...65535).contains(port), !rest.contains("/") else { return nil }
        let host = String(rest[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") {
            return ResolvableTargets.IPv6.ipv6(address: String(host.dropFirst().dropLast()), port: port)
        }
        guard !host.isEmpty, !host.contains(":") else { return nil }
        if host.split(separator: ".").count == 4, host.allSatisfy({ $0 == "." || $0.isNumber }) {
            return ResolvableTargets.IPv4.ipv4(address: host, port: port)
        }
        return ResolvableTargets.DNS.dns(host: host, port: port)
    }
}
