import TurnstileCore

extension ConfigParser {
    /// Reads `[cluster]` (protocol/CLUSTER.md §1): `endpoints` and `shared` are required (a
    /// cluster with no member to reach, or sharing nothing, is a mistake worth naming), the
    /// rest has defaults. Every value is bounded (`ClusterConfig`'s limits).
    static func readCluster(_ reader: TableReader) throws(ConfigError) -> ClusterConfig {
        try reader.allowOnly(["endpoints", "prefix", "host", "lease_ttl_ms", "shared", "on_loss", "ca_file", "cert_file", "key_file"])
        let endpoints = try reader.strings("endpoints")
        if endpoints.isEmpty {
            throw reader.error("endpoints", "is required: the etcd members' client URLs, e.g. [\"http://10.0.0.5:2379\"]")
        }
        if endpoints.count > ClusterConfig.endpointsMax {
            throw reader.error("endpoints", "lists \(endpoints.count) endpoints; at most \(ClusterConfig.endpointsMax)")
        }
        for endpoint in endpoints {
            if let problem = endpointProblem(endpoint) { throw reader.error("endpoints", problem) }
        }
        if Set(endpoints.map { $0.hasPrefix("https://") }).count > 1 {
            throw reader.error("endpoints", "mixes https:// and http:// endpoints: a fleet's members are reached all over TLS or none")
        }
        var cluster = ClusterConfig(endpoints: endpoints, shared: try readSharedKinds(reader))
        try readTLSFiles(reader, into: &cluster)
        if let prefix = try reader.string("prefix") {
            if let problem = prefixProblem(prefix) { throw reader.error("prefix", problem) }
            cluster.prefix = prefix
        }
        if let host = try reader.string("host") {
            if let problem = Names.labelProblem(host, what: "host") { throw reader.error("host", problem) }
            if host.utf8.contains(UInt8(ascii: "/")) { throw reader.error("host", "host cannot contain '/': it is a key segment") }
            cluster.host = host
        }
        let ttlRange = ClusterConfig.leaseTTLRange
        if let ttl = try reader.int("lease_ttl_ms", min: Int(ttlRange.lowerBound), max: Int(ttlRange.upperBound)) {
            cluster.leaseTTLMilliseconds = UInt64(ttl)
        }
        if let text = try reader.string("on_loss") {
            guard let policy = ClusterConfig.LossPolicy(rawValue: text) else {
                throw reader.error("on_loss", "must be \"revoke\" or \"keep\" (got \(text))")
            }
            cluster.onLoss = policy
        }
        return cluster
    }

    /// `shared`: at least one kind, each one protocol/CLUSTER.md names; repeats count once.
    private static func readSharedKinds(_ reader: TableReader) throws(ConfigError) -> Set<ClusterConfig.SharedKind> {
        let names = try reader.strings("shared")
        let known = ClusterConfig.SharedKind.allCases.map(\.rawValue).joined(separator: ", ")
        if names.isEmpty { throw reader.error("shared", "is required: the kinds of limit the hosts count together (\(known))") }
        var kinds = Set<ClusterConfig.SharedKind>()
        for name in names {
            guard let kind = ClusterConfig.SharedKind(rawValue: name) else {
                throw reader.error("shared", "unknown kind \(name) (known: \(known))")
            }
            kinds.insert(kind)
        }
        return kinds
    }

    /// `ca_file`, `cert_file`, `key_file`: only with `https://` endpoints (a plain fleet given
    /// certificates was meant to speak TLS), a certificate with its key. The daemon reads them
    /// at start and refuses to start, naming the file, if it cannot.
    private static func readTLSFiles(_ reader: TableReader, into cluster: inout ClusterConfig) throws(ConfigError) {
        for key in ["ca_file", "cert_file", "key_file"] {
            guard let path = try reader.string(key) else { continue }
            if path.isEmpty || path.utf8.count > ClusterConfig.textMaxBytes || Names.containsControl(path) {
                throw reader.error(key, "must be a file's path (at most \(ClusterConfig.textMaxBytes) bytes, no control characters)")
            }
            if !cluster.usesTLS { throw reader.error(key, "is for https:// endpoints; these are http://") }
            switch key {
            case "ca_file": cluster.caFile = path
            case "cert_file": cluster.certFile = path
            default: cluster.keyFile = path
            }
        }
        if (cluster.certFile == nil) != (cluster.keyFile == nil) {
            throw reader.error(cluster.certFile == nil ? "key_file" : "cert_file",
                               "a client certificate (cert_file) needs its key (key_file), and a key its certificate")
        }
    }

    /// Why an endpoint is not an etcd client URL (`http://` or `https://`, then a host), or nil.
    private static func endpointProblem(_ endpoint: String) -> String? {
        if endpoint.utf8.count > ClusterConfig.textMaxBytes { return "an endpoint is longer than \(ClusterConfig.textMaxBytes) bytes" }
        if Names.containsControl(endpoint) || endpoint.contains(" ") { return "an endpoint contains spaces or control characters" }
        for scheme in ["http://", "https://"] where endpoint.hasPrefix(scheme) && endpoint.utf8.count > scheme.utf8.count {
            return nil
        }
        return "endpoints are URLs like \"http://10.0.0.5:2379\" or \"https://10.0.0.5:2379\" (got \"\(endpoint)\")"
    }

    /// Why a key prefix cannot be used, or nil. It ends with `/` so that no fleet's prefix is
    /// the start of another's keys (`/fleet-a` would hold `/fleet-ab/…`).
    private static func prefixProblem(_ prefix: String) -> String? {
        if prefix.isEmpty { return "prefix is empty" }
        if prefix.utf8.count > ClusterConfig.textMaxBytes { return "prefix is longer than \(ClusterConfig.textMaxBytes) bytes" }
        if Names.containsControl(prefix) { return "prefix contains control characters" }
        if !prefix.hasSuffix("/") { return "prefix must end with '/' (got \"\(prefix)\")" }
        return nil
    }
}
