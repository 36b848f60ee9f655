/// How a granted lease came by its model (SPEC §1.4): the one asked for, the acquire's own
/// fallback chain, a capability match, or a CLI provider.
public enum Route: String, Sendable, Codable, Hashable {
    case primary, chain, capability, cli
}

/// One model an acquire could be granted, and the route that led to it.
public struct ModelCandidate: Hashable, Sendable {
    /// The pool.
    public var key: ModelKey
    /// How it was reached.
    public var route: Route

    public init(key: ModelKey, route: Route) {
        self.key = key
        self.route = route
    }
}

/// The configured knowledge about models, indexed for the admission check: each pool's limit,
/// tier and tool support, and the fallback candidates of a primary model.
///
/// Built once per config (at start and on reload); lookups are dictionary reads.
public struct ModelTable: Sendable {
    private var byPool: [ModelKey: ModelConfig] = [:]
    private var byName: [String: ModelConfig] = [:]
    private let providers: [ProviderConfig]

    /// Indexes a config's `[[providers]]` and `[[models]]`.
    public init(providers: [ProviderConfig], models: [ModelConfig]) {
        self.providers = providers.map {
            ProviderConfig(name: $0.name.lowercased(), kind: $0.kind, models: $0.models)
        }
        for entry in models {
            if let key = ModelKey(parsing: entry.name) {
                byPool[key] = entry
            } else {
                byName[entry.name] = entry
            }
        }
    }

    /// Concurrency limit of a pool: its `provider/model` entry, else its bare-name entry, else
    /// the default of its tier.
    public func limit(of pool: ModelKey) -> Int {
        if let limit = byPool[pool]?.concurrencyLimit { return limit }
        if let limit = byName[pool.model]?.concurrencyLimit { return limit }
        return traits(of: pool).tier.defaultConcurrencyLimit
    }

    /// Tier and tool support of a pool: config (pool entry, then bare entry), then catalog.
    public func traits(of pool: ModelKey) -> ModelTraits {
        let catalog = ModelCatalog.traits(of: pool.model)
        let poolEntry = byPool[pool]
        let nameEntry = byName[pool.model]
        return ModelTraits(
            tier: poolEntry?.tier ?? nameEntry?.tier ?? catalog.tier,
            tools: poolEntry?.tools ?? nameEntry?.tools ?? catalog.tools
        )
    }

    /// Every pool the config knows of (providers' models and `provider/model` entries), for
    /// status and metrics.
    public var configuredPools: [ModelKey] {
        var seen = Set<ModelKey>()
        var pools: [ModelKey] = []
        for provider in providers {
            for model in provider.models {
                let key = ModelKey(provider: provider.name, model: model)
                if seen.insert(key).inserted { pools.append(key) }
            }
        }
        for key in byPool.keys.sorted() where seen.insert(key).inserted {
            pools.append(key)
        }
        return pools
    }

    /// Resolves a bare model name (no provider) to the first configured provider offering it.
    public func resolveBareModel(_ name: String) -> ModelKey? {
        for provider in providers where provider.models.contains(name) {
            return ModelKey(provider: provider.name, model: name)
        }
        return nil
    }

    /// The candidates of an acquire, in the order the limiter tries them (SPEC §1.4, §4a):
    /// the primary; the acquire's chain; capability matches of the same tier, then one tier
    /// cheaper, among API providers in config order (keeping tool support if the primary has
    /// it); then CLI providers' models (checking only tool support). Duplicates are dropped.
    /// - Parameters:
    ///   - primary: the model asked for.
    ///   - chain: the acquire's own fallback list.
    public func candidates(primary: ModelKey, chain: [ModelKey]) -> [ModelCandidate] {
        var seen: Set<ModelKey> = [primary]
        var result = [ModelCandidate(key: primary, route: .primary)]
        func offer(_ key: ModelKey, _ route: Route) {
            if seen.insert(key).inserted { result.append(ModelCandidate(key: key, route: route)) }
        }
        for key in chain { offer(key, .chain) }
        let wanted = traits(of: primary)
        var tiers = [wanted.tier]
        if let cheaper = wanted.tier.cheaper { tiers.append(cheaper) }
        for tier in tiers {
            for provider in providers where provider.kind == .api {
                for model in provider.models {
                    let key = ModelKey(provider: provider.name, model: model)
                    let have = traits(of: key)
                    if have.tier == tier && (!wanted.tools || have.tools) { offer(key, .capability) }
                }
            }
        }
        for provider in providers where provider.kind == .cli {
            for model in provider.models {
                let key = ModelKey(provider: provider.name, model: model)
                if !wanted.tools || traits(of: key).tools { offer(key, .cli) }
            }
        }
        return result
    }
}
