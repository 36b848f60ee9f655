import Testing
import TurnstileCluster

extension ClusterTests {
    /// `https://` endpoints (README, "Shared limits"): members that speak TLS and require a
    /// client certificate, as etcd across hosts usually runs. Tests/cluster/etcd-cluster.sh makes
    /// the CA and the certificates with openssl.
    @Suite("TLS")
    struct TLSTests {
        static func configuration(_ tls: EtcdClient.TLS) -> EtcdClient.Configuration {
            var configuration = EtcdClient.Configuration()
            configuration.timeout = .seconds(2)
            configuration.tls = tls
            return configuration
        }

        @Test func aClientWithTheCAAndACertificateTalksToMembersThatRequireOne() async throws {
            let cluster = try EtcdCluster(tls: true)
            defer { cluster.stop() }
            #expect(cluster.endpoints.allSatisfy { $0.hasPrefix("https://") })
            let tls = EtcdClient.TLS(caFile: cluster.tlsFile("ca.pem"), certFile: cluster.tlsFile("client.pem"),
                                     keyFile: cluster.tlsFile("client-key.pem"))
            let client = try EtcdClient(endpoints: cluster.endpoints, configuration: Self.configuration(tls))
            let lease = try await client.grantLease(ttlSeconds: 30).id
            let claimed = try await claim(["sem/model/0"], for: lease, on: client)
            #expect(claimed.succeeded)
            #expect(try await client.range(.key("sem/model/0")).keyValues.first?.lease == lease)

            // Without a client certificate the members refuse the handshake: the call fails by
            // its deadline as not applied (the member unreachable), so a daemon would retry it.
            let anonymous = try EtcdClient(endpoints: cluster.endpoints,
                                           configuration: Self.configuration(EtcdClient.TLS(caFile: cluster.tlsFile("ca.pem"))))
            let refused = await #expect(throws: EtcdError.self) { try await anonymous.put("sem/anonymous", Array("x".utf8)) }
            #expect(refused?.outcome == .notApplied && refused?.reason == .unreachable, "\(String(describing: refused))")
            // Trusting another CA (here the members' own certificate, which signs nothing), the
            // client refuses the members.
            let distrustful = try EtcdClient(endpoints: cluster.endpoints, configuration: Self.configuration(
                EtcdClient.TLS(caFile: cluster.tlsFile("client.pem"), certFile: cluster.tlsFile("client.pem"),
                               keyFile: cluster.tlsFile("client-key.pem"))))
            let distrusted = await #expect(throws: EtcdError.self) { try await distrustful.put("sem/distrustful", Array("x".utf8)) }
            #expect(distrusted?.outcome == .notApplied, "\(String(describing: distrusted))")
            #expect(try await client.range(.prefix("sem/")).keyValues.map(\.key) == ["sem/model/0"], "neither wrote")
            await anonymous.close()
            await distrustful.close()
            await client.close()
        }

        @Test func filesThatCannotBeReadOrAKeyWithoutItsCertificateFailTheClientAtOnce() throws {
            let endpoints = ["https://127.0.0.1:2379"]
            for tls in [EtcdClient.TLS(caFile: "/nonexistent/ca.pem"),
                        EtcdClient.TLS(certFile: "/nonexistent/client.pem", keyFile: "/nonexistent/client-key.pem")] {
                #expect(throws: EtcdError.self) { try EtcdClient(endpoints: endpoints, configuration: Self.configuration(tls)) }
            }
            #expect(throws: EtcdError.self) {
                try EtcdClient(endpoints: endpoints, configuration: Self.configuration(EtcdClient.TLS(keyFile: "/etc/hostname")))
            }
            // Plain endpoints ignore the files.
            let plain = try EtcdClient(endpoints: ["http://127.0.0.1:2379"],
                                       configuration: Self.configuration(EtcdClient.TLS(caFile: "/nonexistent/ca.pem")))
            plain.close {}
        }
    }
}
