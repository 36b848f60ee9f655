import Foundation
import Testing
import TurnstileCluster

/// A 3-member etcd cluster on loopback for one test, driven through Tests/cluster/etcd-cluster.sh
/// (which waits on health, not sleeps, and keeps etcd's data on tmpfs). `withCluster` stops it
/// whatever the test does.
final class EtcdCluster: Sendable {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let script = packageRoot + "/Tests/cluster/etcd-cluster.sh"

    /// Whether etcd and etcdctl are installed (`make test` installs Debian's etcd-server and
    /// etcd-client); the tests that need a cluster are skipped without them.
    static let available: Bool = ["etcd", "etcdctl"].allSatisfy { tool in
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)")
        }
    }
    static let missing: Comment = "etcd is not installed (apt-get install etcd-server etcd-client; `make test` does)"

    let directory: String
    /// The members' client URLs, member 1 first.
    let endpoints: [String]

    /// With `tls`, the members speak TLS and require a client certificate (`tlsFile`).
    init(tls: Bool = false) throws {
        var template = Array("/tmp/turnstile-etcd-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ClusterError(message: "mkdtemp failed") }
        directory = String(cString: made)
        let urls = try Self.run(environment: tls ? ["ETCD_TLS": "1"] : [:], "start", directory)
        endpoints = urls.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init)
    }

    /// A file of a TLS cluster's: `ca.pem`, `client.pem`, `client-key.pem`, `server.pem`…
    func tlsFile(_ name: String) -> String { directory + "/tls/" + name }

    /// The URL of member `n` (1-based).
    func endpoint(_ n: Int) -> String { endpoints[n - 1] }

    func stop() {
        _ = try? Self.run("stop", directory)
        try? FileManager.default.removeItem(atPath: directory)
    }

    func kill(_ n: Int) throws { try Self.run("kill", directory, "\(n)") }
    func restart(_ n: Int) throws { try Self.run("restart", directory, "\(n)") }
    func pause(_ n: Int) throws { try Self.run("pause", directory, "\(n)") }
    func resume(_ n: Int) throws { try Self.run("resume", directory, "\(n)") }
    func waitHealthy() throws { try Self.run("wait-healthy", directory) }

    /// The member that leads now (waits for one).
    func leader() throws -> Int {
        guard let n = Int(try Self.run("leader", directory).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ClusterError(message: "no leader")
        }
        return n
    }

    /// A client of this cluster (every member, member 1 first, unless told otherwise).
    func client(_ endpoints: [String]? = nil, timeout: Duration = .seconds(2)) throws -> EtcdClient {
        var configuration = EtcdClient.Configuration()
        configuration.timeout = timeout
        return try EtcdClient(endpoints: endpoints ?? self.endpoints, configuration: configuration)
    }

    /// Runs `body` with a client of `endpoints` (in that order), closed afterwards.
    func withClient(_ endpoints: [String], timeout: Duration = .seconds(2), _ body: (EtcdClient) async throws -> Void) async throws {
        let client = try self.client(endpoints, timeout: timeout)
        do {
            try await body(client)
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }

    /// Runs the script; its standard output, or an error with both outputs when it fails.
    @discardableResult
    static func run(environment: [String: String] = [:], _ arguments: String...) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ClusterError(message: "etcd-cluster.sh \(arguments.joined(separator: " ")) failed:\n\(out)\(err)")
        }
        return out
    }
}

struct ClusterError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Runs `body` against a fresh cluster and a client of it, and stops both afterwards.
func withCluster(timeout: Duration = .seconds(2), _ body: (EtcdCluster, EtcdClient) async throws -> Void) async throws {
    let cluster = try EtcdCluster()
    let client: EtcdClient
    do {
        client = try cluster.client(timeout: timeout)
    } catch {
        cluster.stop()
        throw error
    }
    do {
        try await body(cluster, client)
    } catch {
        await client.close()
        cluster.stop()
        throw error
    }
    await client.close()
    cluster.stop()
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func eventually(within seconds: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
