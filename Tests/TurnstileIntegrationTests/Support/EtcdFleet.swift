import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// A 3-member etcd on loopback (Tests/cluster/etcd-cluster.sh: it waits on health, never
/// sleeps) and daemons sharing a model limit through it, each with its own socket, state
/// directory and `host` name, for one test. `stop` ends everything; `deinit` too.
final class EtcdFleet: @unchecked Sendable {
    static let script = Binaries.packageRoot + "/Tests/cluster/etcd-cluster.sh"
    /// Whether etcd and etcdctl are installed (`make test` installs Debian's etcd-server and
    /// etcd-client); the tests that need them are skipped without.
    static let available: Bool = ["etcd", "etcdctl"].allSatisfy { tool in
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)")
        }
    }
    static let missing: Comment = "etcd is not installed (apt-get install etcd-server etcd-client; `make test` does)"

    let directory: String
    let endpoints: [String]
    /// Whether the members speak TLS and require a client certificate (`tlsFile`).
    let tls: Bool
    private(set) var daemons: [Daemon] = []
    private var stopped = false

    init(tls: Bool = false) throws {
        directory = try Daemon.makeTemporaryDirectory()
        self.tls = tls
        // The script prints the client URLs, comma-separated, on its last line.
        let lines = try Self.run(environment: tls ? ["ETCD_TLS": "1"] : [:], "start", directory).split(separator: "\n")
        endpoints = (lines.last { $0.hasPrefix("http") } ?? "").split(separator: ",").map(String.init)
    }

    /// A file the script made for a TLS fleet: `ca.pem`, `client.pem`, `client-key.pem`.
    func tlsFile(_ name: String) -> String { directory + "/tls/" + name }

    /// The config of host `host`: `body` (limits, models) and a `[cluster]` sharing models
    /// under this fleet's own prefix.
    func config(host: String, body: String, leaseTTLMilliseconds: Int = 2000, onLoss: String = "revoke",
                shared: String = "\"models\"") -> String {
        let urls = endpoints.map { "\"\($0)\"" }.joined(separator: ", ")
        return body + """

            [cluster]
            endpoints = [\(urls)]
            prefix = "/turnstile/test-\((directory as NSString).lastPathComponent)/"
            host = "\(host)"
            lease_ttl_ms = \(leaseTTLMilliseconds)
            shared = [\(shared)]
            on_loss = "\(onLoss)"
            """ + (tls ? """

            ca_file = "\(tlsFile("ca.pem"))"
            cert_file = "\(tlsFile("client.pem"))"
            key_file = "\(tlsFile("client-key.pem"))"
            """ : "")
    }

    /// Starts a daemon for `host` and waits until it holds its host lease.
    @discardableResult
    func startDaemon(host: String, body: String, leaseTTLMilliseconds: Int = 2000, onLoss: String = "revoke",
                     shared: String = "\"models\"") throws -> Daemon {
        let daemon = try Daemon(config: config(host: host, body: body, leaseTTLMilliseconds: leaseTTLMilliseconds, onLoss: onLoss,
                                               shared: shared))
        daemons.append(daemon)
        guard daemon.logShows("cluster: available") else { throw DaemonError(message: "\(host) never joined:\n\(daemon.log)") }
        return daemon
    }

    /// Why a daemon for `host` refuses to start (its error, as the test reads it); nil if it
    /// started (it is stopped again at once).
    func startRefusal(host: String, body: String, shared: String = "\"models\"") -> String? {
        do {
            _ = try Daemon(config: config(host: host, body: body, shared: shared))
            return nil
        } catch {
            return "\(error)"
        }
    }

    func pause(_ member: Int) throws { try Self.run("pause", directory, "\(member)") }
    func resume(_ member: Int) throws { try Self.run("resume", directory, "\(member)") }

    func stop() {
        guard !stopped else { return }
        stopped = true
        for daemon in daemons { daemon.stop() }
        _ = try? Self.run("stop", directory)
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    @discardableResult
    static func run(environment: [String: String] = [:], _ arguments: String...) throws -> String {
        let process = try ChildProcess(["bash", script] + arguments,
                                       environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
        guard process.waitForExit(milliseconds: 60_000) != nil, process.exitCode == 0 else {
            throw DaemonError(message: "etcd-cluster.sh \(arguments.joined(separator: " ")) failed:\n\(process.output)")
        }
        return process.output
    }
}
