import TOMLKit
import TurnstileCore

/// Reads a TOML config into a `TurnstileConfig`, refusing anything it does not understand:
/// a syntax error, an unknown key (most likely a typo), a value of the wrong type or out of
/// range, a duplicate project, provider or model. Every error names the file, the key and,
/// where it can be found, the line.
public enum ConfigParser {
    /// Parses and validates a config.
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - file: the file's path, for messages.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> TurnstileConfig {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, line: error.source.begin.line, message: error.description)
        } catch {
            throw ConfigError(file: file, message: "\(error)")
        }
        let reader = TableReader(file: file, locator: ConfigKeyLocator(text), table: root, name: nil, index: nil)
        return try readRoot(reader)
    }

    private static func readRoot(_ reader: TableReader) throws(ConfigError) -> TurnstileConfig {
        var config = TurnstileConfig()
        if let cluster = try reader.table("cluster") { config.cluster = try readCluster(cluster) }
        try reader.allowOnly(["socket", "state_dir", "pause_dir", "socket_mode", "socket_group", "allow_uids",
                              "allow_gids", "admin_uids", "limits", "server", "projects", "pools", "providers", "models",
                              "circuit_breaker", "telemetry", "cluster"])
        config.socketPath = try reader.path("socket")
        config.stateDirectory = try reader.path("state_dir")
        config.pauseDirectory = try reader.path("pause_dir")
        if let state = config.stateDirectory, let pause = config.pauseDirectory,
           let conflict = DirectoryLayout.conflict(state: state, pause: pause) {
            throw reader.error("pause_dir", conflict)
        }
        config.access = try readAccess(reader)
        if let limits = try reader.table("limits") { config.limits = try readLimits(limits) }
        if let server = try reader.table("server") { config.server = try readServer(server) }
        if let breaker = try reader.table("circuit_breaker") {
            try breaker.allowOnly(["threshold", "on_trip"])
            config.circuitBreaker.threshold = try breaker.int("threshold", min: 0, max: ConfigBounds.permitsMax) ?? config.circuitBreaker.threshold
            config.circuitBreaker.onTrip = try breaker.string("on_trip")
        }
        if let telemetry = try reader.table("telemetry") {
            try telemetry.allowOnly(["window_secs", "subscription_limit_ttl_secs", "max_models", "max_events_per_model",
                                     "max_sessions"])
            if let window = try telemetry.int("window_secs", min: 1, max: ConfigBounds.secondsMax) { config.telemetry.windowSeconds = UInt64(window) }
            if let ttl = try telemetry.int("subscription_limit_ttl_secs", min: 0, max: ConfigBounds.secondsMax) {
                config.telemetry.subscriptionLimitTTLSeconds = UInt64(ttl)
            }
            let bounds = config.telemetry.bounds
            config.telemetry.bounds = Telemetry.Bounds(
                models: try telemetry.int("max_models", min: 1, max: ConfigBounds.telemetryCountMax) ?? bounds.models,
                eventsPerModel: try telemetry.int("max_events_per_model", min: 1, max: ConfigBounds.telemetryCountMax)
                    ?? bounds.eventsPerModel,
                sessions: try telemetry.int("max_sessions", min: 1, max: ConfigBounds.telemetryCountMax) ?? bounds.sessions)
        }
        config.projects = try readProjects(reader)
        config.pools = try readPools(reader)
        config.providers = try readProviders(reader)
        config.models = try readModels(reader)
        return config
    }

    private static func readAccess(_ reader: TableReader) throws(ConfigError) -> AccessConfig {
        var access = AccessConfig()
        if let mode = try reader.string("socket_mode") {
            guard let value = UInt32(mode, radix: 8), value <= 0o777, value & 0o600 == 0o600 else {
                throw reader.error("socket_mode", "must be an octal mode like \"0600\" or \"0660\" that keeps the owner's read and write (got \(mode))")
            }
            access.socketMode = value
        }
        if let group = try reader.scalarText("socket_group") { access.socketGroup = group }
        access.allowUIDs = try reader.ids("allow_uids")
        access.allowGIDs = try reader.ids("allow_gids")
        access.adminUIDs = try reader.ids("admin_uids")
        return access
    }

    private static func readLimits(_ reader: TableReader) throws(ConfigError) -> LimitsConfig {
        var limits = LimitsConfig()
        try reader.allowOnly(["global", "time", "issue", "fairness", "default_ttl_ms", "priority_aging_ms", "kill_grace_ms"])
        limits.global = try reader.int("global", min: 0, max: ConfigBounds.permitsMax) ?? limits.global
        limits.time = try reader.int("time", min: 0, max: ConfigBounds.permitsMax) ?? limits.time
        limits.issue = try reader.int("issue", min: 0, max: ConfigBounds.permitsMax) ?? limits.issue
        if let name = try reader.string("fairness") {
            guard let policy = FairnessPolicy(parsing: name) else {
                throw reader.error("fairness", "unknown fairness policy: \(name) (use round_robin, priority or proportional)")
            }
            limits.fairness = policy
        }
        if let ttl = try reader.int("default_ttl_ms", min: Int(AcquireRequest.ttlRange.lowerBound),
                                    max: Int(AcquireRequest.ttlRange.upperBound)) {
            limits.defaultTTLMilliseconds = UInt64(ttl)
        }
        if let aging = try reader.int("priority_aging_ms", min: 0, max: ConfigBounds.millisecondsMax) { limits.priorityAgingMilliseconds = UInt64(aging) }
        if let grace = try reader.int("kill_grace_ms", min: 0, max: ConfigBounds.millisecondsMax) {
            limits.killGraceMilliseconds = UInt64(grace)
        }
        return limits
    }

    private static func readServer(_ reader: TableReader) throws(ConfigError) -> ServerLimits {
        var server = ServerLimits()
        try reader.allowOnly(["max_connections", "max_pending_per_connection", "max_output_bytes",
                              "max_leases_per_connection", "max_waiters"])
        server.maxConnections = try reader.int("max_connections", min: 1, max: ConfigBounds.perConnectionMax) ?? server.maxConnections
        server.maxPendingPerConnection = try reader.int("max_pending_per_connection", min: 1, max: ConfigBounds.perConnectionMax)
            ?? server.maxPendingPerConnection
        server.maxOutputBytes = try reader.int("max_output_bytes", min: 65_536, max: ConfigBounds.outputBytesMax) ?? server.maxOutputBytes
        server.maxLeasesPerConnection = try reader.int("max_leases_per_connection", min: 1, max: ConfigBounds.perConnectionMax)
            ?? server.maxLeasesPerConnection
        server.maxWaiters = try reader.int("max_waiters", min: 1, max: ConfigBounds.waitersMax) ?? server.maxWaiters
        return server
    }

    private static func readPools(_ reader: TableReader) throws(ConfigError) -> [PoolConfig] {
        var pools: [PoolConfig] = []
        for entry in try reader.tables("pools") {
            try entry.allowOnly(["name", "limit"])
            let name = try entry.requiredString("name")
            if let problem = Names.labelProblem(name, what: "pool name") { throw entry.error("name", problem) }
            if pools.contains(where: { $0.name.utf8.elementsEqual(name.utf8) }) { throw entry.error("name", "duplicate pool \(name)") }
            guard let limit = try entry.int("limit", min: 1, max: PoolConfig.limitMax) else {
                throw entry.error("limit", "pool \(name) needs a limit (1 to \(PoolConfig.limitMax))")
            }
            pools.append(PoolConfig(name: name, limit: limit))
        }
        return pools
    }

    private static func readProjects(_ reader: TableReader) throws(ConfigError) -> [ProjectConfig] {
        var projects: [ProjectConfig] = []
        for entry in try reader.tables("projects") {
            try entry.allowOnly(["name", "max", "max_mention"])
            let name = try entry.requiredString("name")
            if let problem = Names.projectNameProblem(name) { throw entry.error("name", problem) }
            if projects.contains(where: { $0.name == name }) { throw entry.error("name", "duplicate project \(name)") }
            projects.append(ProjectConfig(name: name, max: try entry.int("max", min: 0, max: ConfigBounds.permitsMax),
                                          maxMention: try entry.int("max_mention", min: 0, max: ConfigBounds.permitsMax)))
        }
        return projects
    }

    private static func readProviders(_ reader: TableReader) throws(ConfigError) -> [ProviderConfig] {
        var providers: [ProviderConfig] = []
        for entry in try reader.tables("providers") {
            try entry.allowOnly(["name", "kind", "models"])
            let name = try entry.requiredString("name").lowercased()
            if let problem = Names.labelProblem(name, what: "provider name") { throw entry.error("name", problem) }
            if name.contains("/") { throw entry.error("name", "provider name cannot contain '/'") }
            if providers.contains(where: { $0.name == name }) { throw entry.error("name", "duplicate provider \(name)") }
            var kind = ProviderKind.api
            if let text = try entry.string("kind") {
                guard let parsed = ProviderKind(rawValue: text.lowercased()) else {
                    throw entry.error("kind", "must be \"api\" or \"cli\" (got \(text))")
                }
                kind = parsed
            }
            let models = try entry.strings("models")
            if let bad = models.first(where: { $0.trimmingWhitespace().isEmpty || $0.contains("/") }) {
                throw entry.error("models", "model names are bare names, without the provider (got \"\(bad)\")")
            }
            providers.append(ProviderConfig(name: name, kind: kind, models: models.map { $0.trimmingWhitespace() }))
        }
        return providers
    }

    private static func readModels(_ reader: TableReader) throws(ConfigError) -> [ModelConfig] {
        var models: [ModelConfig] = []
        for entry in try reader.tables("models") {
            try entry.allowOnly(["name", "concurrency_limit", "tier", "tools"])
            var name = try entry.requiredString("name").trimmingWhitespace()
            if name.contains("/") {
                guard let key = ModelKey(parsing: name) else {
                    throw entry.error("name", "not a model name or provider/model: \(name)")
                }
                name = key.description
            } else if name.isEmpty {
                throw entry.error("name", "model name is empty")
            }
            if models.contains(where: { $0.name == name }) { throw entry.error("name", "duplicate model \(name)") }
            var tier: CostTier?
            if let text = try entry.string("tier") {
                guard let parsed = CostTier(rawValue: text.lowercased()) else {
                    throw entry.error("tier", "unknown tier \(text) (use premium, standard or cheap)")
                }
                tier = parsed
            }
            models.append(ModelConfig(name: name, concurrencyLimit: try entry.int("concurrency_limit", min: 0, max: ConfigBounds.permitsMax),
                                      tier: tier, tools: try entry.bool("tools")))
        }
        return models
    }
}
