/// How a granted lease came by its model (README, "Models and fallback"): the one asked for, the acquire's own
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
/// Built once per config (at start and on reload), with every configured pool's limit and
/// traits and the capability fallback lists worked out in advance, so that an acquire costs
/// dictionary reads, not catalog searches.
public struct ModelTable: Sendable {
    /// What the limiter needs of one pool.
    struct PoolInfo: Sendable {
        var limit: Int
        var traits: ModelTraits
    }

    private var byPool: [ModelKey: ModelConfig] = [:]
    private var byName: [String: ModelConfig] = [:]
    private var known: [ModelKey: PoolInfo] = [:]
    /// API providers' pools per tier, in config order (capability fallback).
    private var apiPoolsByTier: [CostTier: [ModelKey]] = [:]
    /// CLI providers' pools, in config order.
    private var cliPools: [ModelKey] = []
    private let providers: [ProviderConfig]
    /// Every pool the config names, in config order, for status and metrics.
    public private(set) var configuredPools: [ModelKey] = []

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
        var seen = Set<ModelKey>()
        for provider in self.providers {
            for model in provider.models {
                let key = ModelKey(provider: provider.name, model: model)
                guard seen.insert(key).inserted else { continue }
                configuredPools.append(key)
                let info = computeInfo(key)
                known[key] = info
                if provider.kind == .api {
                    apiPoolsByTier[info.traits.tier, default: []].append(key)
                } else {
                    cliPools.append(key)
                }
            }
        }
        for key in byPool.keys.sorted() where seen.insert(key).inserted {
            configuredPools.append(key)
            known[key] = computeInfo(key)
        }
    }

    /// Concurrency limit of a pool: its `provider/model` entry, else its bare-name entry, else
    /// the default of its tier.
    public func limit(of pool: ModelKey) -> Int {
        known[pool]?.limit ?? computeInfo(pool).limit
    }

    /// Tier and tool support of a pool: config (pool entry, then bare entry), then catalog.
    public func traits(of pool: ModelKey) -> ModelTraits {
        known[pool]?.traits ?? computeInfo(pool).traits
    }

    private func computeInfo(_ pool: ModelKey) -> PoolInfo {
        let poolEntry = byPool[pool]
        let nameEntry = byName[pool.model]
        var traits = ModelTraits(tier: poolEntry?.tier ?? nameEntry?.tier ?? .standard,
                                 tools: poolEntry?.tools ?? nameEntry?.tools ?? true)
        if (poolEntry?.tier ?? nameEntry?.tier) == nil || (poolEntry?.tools ?? nameEntry?.tools) == nil {
            let catalog = ModelCatalog.traits(of: pool.model)
            traits = ModelTraits(tier: poolEntry?.tier ?? nameEntry?.tier ?? catalog.tier,
                                 tools: poolEntry?.tools ?? nameEntry?.tools ?? catalog.tools)
        }
        let limit = poolEntry?.concurrencyLimit ?? nameEntry?.concurrencyLimit ?? traits.tier.defaultConcurrencyLimit
        return PoolInfo(limit: limit, traits: traits)
    }

    /// Resolves a bare model name (no provider) to the first configured provider offering it.
    public func resolveBareModel(_ name: String) -> ModelKey? {
        for provider in providers where provider.models.contains(name) {
            return ModelKey(provider: provider.name, model: name)
        }
        return nil
    }

    /// The candidates of an acquire, in the order the limiter tries them (README, "Models and fallback"; protocol/PROTOCOL.md §8.2):
    /// the primary; the acquire's chain; capability matches of the same tier, then one tier
    /// cheaper, among API providers in config order (keeping tool support if the primary has
    /// it); then CLI providers' models (checking only tool support). Duplicates are dropped.
    /// - Parameters:
    ///   - primary: the model asked for.
    ///   - chain: the acquire's own fallback list.
    public func candidates(primary: ModelKey, chain: [ModelKey]) -> [ModelCandidate] {
        var result = [ModelCandidate(key: primary, route: .primary)]
        func offer(_ key: ModelKey, _ route: Route) {
            if !result.contains(where: { $0.key == key }) { result.append(ModelCandidate(key: key, route: route)) }
        }
        for key in chain { offer(key, .chain) }
        let wanted = traits(of: primary)
        var tiers = [wanted.tier]
        if let cheaper = wanted.tier.cheaper { tiers.append(cheaper) }
        for tier in tiers {
            for key in apiPoolsByTier[tier] ?? [] where !wanted.tools || known[key]!.traits.tools {
                offer(key, .capability)
            }
        }
        for key in cliPools where !wanted.tools || known[key]!.traits.tools { offer(key, .cli) }
        return result
    }
}
