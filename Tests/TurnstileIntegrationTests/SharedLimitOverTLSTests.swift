import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Daemons sharing a model limit through etcd members that speak TLS and require a client
/// certificate (`https://` endpoints with `ca_file`, `cert_file`, `key_file`; protocol/CLUSTER.md §1).
@Suite("Shared limits through etcd over TLS", .serialized, .enabled(if: EtcdFleet.available, EtcdFleet.missing),
       .timeLimit(.minutes(2)))
struct SharedLimitOverTLSTests {
    static let body = "[limits]\nglobal = 10\n\n[[models]]\nname = \"fake/opus\"\nconcurrency_limit = 1\n"

    @Test func twoHostsShareALimitThroughMembersThatRequireAClientCertificate() throws {
        let fleet = try EtcdFleet(tls: true)
        defer { fleet.stop() }
        #expect(fleet.endpoints.allSatisfy { $0.hasPrefix("https://") })
        let one = try fleet.startDaemon(host: "h1", body: Self.body)
        let two = try fleet.startDaemon(host: "h2", body: Self.body)
        let holder = try one.client()
        let granted = try #require(try SharedLimitTests.acquire(holder).grant)
        #expect(granted.clusterFence != nil, "the unit was claimed in etcd")
        let refused = try SharedLimitTests.acquire(try two.client())
        #expect(refused.error == "unavailable" && refused.string("reason") == "model", "h2 counts h1's unit: \(refused.object)")
        withExtendedLifetime(holder) {}
    }

    @Test func aDaemonWhoseCertificateCannotBeReadRefusesToStartNamingTheFile() throws {
        let fleet = try EtcdFleet(tls: true)
        defer { fleet.stop() }
        let missing = fleet.directory + "/tls/nonexistent.pem"
        let config = fleet.config(host: "h1", body: Self.body)
            .replacingOccurrences(of: fleet.tlsFile("client.pem"), with: missing)
        do {
            _ = try Daemon(config: config)
            Issue.record("a daemon whose client certificate is missing started")
        } catch {
            #expect("\(error)".contains("cert_file \(missing) cannot be read"), "\(error)")
        }
    }
}
