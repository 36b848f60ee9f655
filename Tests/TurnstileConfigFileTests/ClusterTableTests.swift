import Testing
import TurnstileCore
@testable import TurnstileConfigFile

/// `[cluster]` (protocol/CLUSTER.md §1): every key, its defaults and bounds, the TLS files, and
/// the kinds the daemon refuses by name because it does not share them yet.
@Suite("Config: the [cluster] table")
struct ClusterTableTests {
    static let design = """
        [cluster]
        endpoints = ["http://10.0.0.5:2379", "http://10.0.0.6:2379", "http://10.0.0.7:2379"]
        prefix = "/turnstile/fleet-a/"
        host = "builder-3"
        lease_ttl_ms = 5000
        shared = ["models", "throttles", "subscription_limits", "models"]
        on_loss = "keep"
        """

    @Test func readsTheDesignsExample() throws {
        let config = try ConfigParser.parse(Self.design, file: "t.toml")
        let cluster = try #require(config.cluster)
        #expect(cluster == ClusterConfig(endpoints: ["http://10.0.0.5:2379", "http://10.0.0.6:2379", "http://10.0.0.7:2379"],
                                         prefix: "/turnstile/fleet-a/", host: "builder-3", leaseTTLMilliseconds: 5_000,
                                         shared: [.models, .throttles, .subscriptionLimits], onLoss: .keep))
    }

    @Test func everyKindCanBeShared() throws {
        let text = "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\n"
            + "shared = [\"models\", \"throttles\", \"subscription_limits\", \"projects\", \"pauses\", \"pools\", \"pools\"]\n"
        let cluster = try #require(try ConfigParser.parse(text, file: "t.toml").cluster)
        #expect(cluster.shared == Set(ClusterConfig.SharedKind.allCases))
    }

    @Test func everyOtherKeyHasADefault() throws {
        let text = "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nshared = [\"models\"]\n"
        let cluster = try #require(try ConfigParser.parse(text, file: "t.toml").cluster)
        #expect(cluster.prefix == "/turnstile/" && cluster.host == nil && cluster.leaseTTLMilliseconds == 5_000)
        #expect(cluster.onLoss == .revoke && cluster.shared == [.models])
    }

    struct Refusal: CustomTestStringConvertible, Sendable {
        let body: String
        let line: Int
        let key: String
        let says: String
        var testDescription: String { says }
    }

    static let minimal = "endpoints = [\"http://127.0.0.1:2379\"]\nshared = [\"models\"]\n"

    static let refusals: [Refusal] = [
        Refusal(body: "shared = [\"models\"]\n", line: 1, key: "cluster.endpoints", says: "is required"),
        Refusal(body: "endpoints = []\nshared = [\"models\"]\n", line: 2, key: "cluster.endpoints", says: "is required"),
        Refusal(body: "endpoints = [\"10.0.0.5:2379\"]\nshared = [\"models\"]\n", line: 2, key: "cluster.endpoints",
                says: "URLs like"),
        Refusal(body: "endpoints = [\"http://\"]\nshared = [\"models\"]\n", line: 2, key: "cluster.endpoints", says: "URLs like"),
        Refusal(body: "endpoints = [\"http://a b\"]\nshared = [\"models\"]\n", line: 2, key: "cluster.endpoints",
                says: "spaces or control characters"),
        Refusal(body: "endpoints = [\"http://127.0.0.1:2379\"]\n", line: 1, key: "cluster.shared", says: "is required"),
        Refusal(body: "endpoints = [\"http://127.0.0.1:2379\"]\nshared = [\"gpus\"]\n", line: 3, key: "cluster.shared",
                says: "unknown kind gpus"),
        Refusal(body: minimal + "prefix = \"/fleet-a\"\n", line: 4, key: "cluster.prefix", says: "must end with '/'"),
        Refusal(body: minimal + "prefix = \"\"\n", line: 4, key: "cluster.prefix", says: "is empty"),
        Refusal(body: minimal + "host = \"a/b\"\n", line: 4, key: "cluster.host", says: "cannot contain '/'"),
        Refusal(body: minimal + "host = \"\"\n", line: 4, key: "cluster.host", says: "host is empty"),
        Refusal(body: minimal + "lease_ttl_ms = 1999\n", line: 4, key: "cluster.lease_ttl_ms", says: "from 2000 to 3600000"),
        Refusal(body: minimal + "lease_ttl_ms = 3600001\n", line: 4, key: "cluster.lease_ttl_ms", says: "from 2000 to 3600000"),
        Refusal(body: minimal + "on_loss = \"panic\"\n", line: 4, key: "cluster.on_loss", says: "\"revoke\" or \"keep\""),
        Refusal(body: minimal + "endpoint = \"x\"\n", line: 4, key: "cluster.endpoint", says: "unknown key"),
        Refusal(body: "endpoints = [\"https://127.0.0.1:2379\", \"http://127.0.0.1:2380\"]\nshared = [\"models\"]\n", line: 2,
                key: "cluster.endpoints", says: "all over TLS or none"),
        Refusal(body: minimal + "ca_file = \"/etc/etcd/ca.pem\"\n", line: 4, key: "cluster.ca_file",
                says: "is for https:// endpoints"),
        Refusal(body: tlsMinimal + "cert_file = \"/etc/etcd/client.pem\"\n", line: 4, key: "cluster.cert_file",
                says: "needs its key (key_file)"),
        Refusal(body: tlsMinimal + "key_file = \"/etc/etcd/client-key.pem\"\n", line: 4, key: "cluster.key_file",
                says: "needs its key (key_file)"),
        Refusal(body: tlsMinimal + "ca_file = \"\"\n", line: 4, key: "cluster.ca_file", says: "must be a file's path"),
    ]

    static let tlsMinimal = "endpoints = [\"https://127.0.0.1:2379\"]\nshared = [\"models\"]\n"

    @Test func httpsEndpointsTakeACAAndAClientCertificate() throws {
        let text = "[cluster]\n" + Self.tlsMinimal
            + "ca_file = \"/etc/etcd/ca.pem\"\ncert_file = \"/etc/etcd/client.pem\"\nkey_file = \"/etc/etcd/client-key.pem\"\n"
        let cluster = try #require(try ConfigParser.parse(text, file: "t.toml").cluster)
        #expect(cluster.usesTLS && cluster.caFile == "/etc/etcd/ca.pem")
        #expect(cluster.certFile == "/etc/etcd/client.pem" && cluster.keyFile == "/etc/etcd/client-key.pem")
        let systemRoots = try #require(try ConfigParser.parse("[cluster]\n" + Self.tlsMinimal, file: "t.toml").cluster)
        #expect(systemRoots.usesTLS && systemRoots.caFile == nil && systemRoots.certFile == nil)
    }

    @Test(arguments: refusals)
    func refusesBadValuesNamingLineAndKey(refusal: Refusal) {
        do {
            _ = try ConfigParser.parse("[cluster]\n" + refusal.body, file: "bad.toml")
            Issue.record("accepted: \(refusal.body)")
        } catch {
            #expect(error.line == refusal.line, "\(error)")
            #expect(error.key == refusal.key, "\(error)")
            #expect(error.message.contains(refusal.says), "\(error)")
        }
    }

    @Test func tooManyEndpointsAreRefused() {
        let endpoints = (0...ClusterConfig.endpointsMax).map { "\"http://10.0.0.\($0):2379\"" }.joined(separator: ", ")
        let text = "[cluster]\nendpoints = [\(endpoints)]\nshared = [\"models\"]\n"
        #expect(throws: ConfigError.self) { try ConfigParser.parse(text, file: "t.toml") }
    }
}
