import Testing
@testable import TurnstileCore

/// `provider/model` parsing, fallback chains, tiers and the catalog (the collet seed's rules:
/// parse at the first `/`, trim both halves, refuse an empty half).
@Suite("Model keys, chains and tiers")
struct ModelKeyTests {
    @Test func parsesAtTheFirstSlashAndTrims() {
        #expect(ModelKey(parsing: "anthropic/claude-opus-4") == ModelKey(provider: "anthropic", model: "claude-opus-4"))
        #expect(ModelKey(parsing: "  zai / glm-5 ") == ModelKey(provider: "zai", model: "glm-5"))
        #expect(ModelKey(parsing: "openrouter/meta-llama/llama-4")?.model == "meta-llama/llama-4")
        #expect(ModelKey(parsing: "Anthropic/Opus")?.description == "anthropic/Opus", "providers ignore case")
    }

    @Test(arguments: ["", "glm-5", "/glm-5", "zai/", " / ", "  /x", "x/  "])
    func refusesMissingHalves(text: String) {
        #expect(ModelKey(parsing: text) == nil)
    }

    @Test func chainParsesFromAString() {
        #expect(ModelKey.parseChain("zai/glm-5, claude/opus") == [
            ModelKey(provider: "zai", model: "glm-5"), ModelKey(provider: "claude", model: "opus"),
        ])
        #expect(ModelKey.parseChain("zai/glm-5,,bogus, /x ,claude/opus").map(\.description) == ["zai/glm-5", "claude/opus"],
                "entries that do not parse are dropped")
        #expect(ModelKey.parseChain("").isEmpty)
    }

    @Test func chainParsesFromAList() {
        #expect(ModelKey.parseChain(["zai/glm-5", "nope", "claude/opus"]).map(\.description) == ["zai/glm-5", "claude/opus"])
    }

    @Test func tierDefaults() {
        #expect(CostTier.premium.defaultConcurrencyLimit == 3)
        #expect(CostTier.standard.defaultConcurrencyLimit == 5)
        #expect(CostTier.cheap.defaultConcurrencyLimit == 8)
        #expect(CostTier.premium.cheaper == .standard)
        #expect(CostTier.standard.cheaper == .cheap)
        #expect(CostTier.cheap.cheaper == nil)
    }

    @Test func catalogHoldsTheSeedExamples() {
        #expect(ModelCatalog.traits(of: "glm-5").tier == .premium)
        #expect(ModelCatalog.traits(of: "glm-4.7").tier == .standard)
        #expect(ModelCatalog.traits(of: "glm-4.7-flash").tier == .cheap)
    }

    @Test func catalogMatchesVersionedNamesByPrefix() {
        #expect(ModelCatalog.traits(of: "claude-opus-4-1-20250805").tier == .premium)
        #expect(ModelCatalog.traits(of: "Claude-Sonnet-4-5").tier == .standard)
        #expect(ModelCatalog.traits(of: "glm-4.70").tier == .standard, "no boundary: unknown, so standard")
        #expect(ModelCatalog.traits(of: "deepseek-reasoner").tools == false)
        #expect(ModelCatalog.traits(of: "totally-new-model") == ModelCatalog.unknown)
        #expect(ModelCatalog.unknown == ModelTraits(tier: .standard, tools: true))
    }

    @Test func limitsComeFromPoolThenNameThenTier() {
        let table = ModelTable(
            providers: [ProviderConfig(name: "anthropic", models: ["claude-opus-4"]),
                        ProviderConfig(name: "zai", models: ["glm-5", "glm-4.7-flash"])],
            models: [ModelConfig(name: "claude-opus-4", concurrencyLimit: 2),
                     ModelConfig(name: "bedrock/claude-opus-4", concurrencyLimit: 7),
                     ModelConfig(name: "glm-4.7-flash", tier: .standard)])
        #expect(table.limit(of: ModelKey(provider: "anthropic", model: "claude-opus-4")) == 2, "bare name entry")
        #expect(table.limit(of: ModelKey(provider: "bedrock", model: "claude-opus-4")) == 7, "pool entry wins")
        #expect(table.limit(of: ModelKey(provider: "zai", model: "glm-5")) == 3, "premium by catalog")
        #expect(table.limit(of: ModelKey(provider: "zai", model: "glm-4.7-flash")) == 5, "tier overridden to standard")
        #expect(table.limit(of: ModelKey(provider: "x", model: "unknown-model")) == 5)
        #expect(table.resolveBareModel("glm-5") == ModelKey(provider: "zai", model: "glm-5"))
        #expect(table.resolveBareModel("nope") == nil)
    }

    @Test func workspacePathsAreNormalised() {
        #expect(Names.normaliseWorkspace("/a/b/") == "/a/b")
        #expect(Names.normaliseWorkspace("/a//b") == "/a/b")
        #expect(Names.normaliseWorkspace("/a/./b/.") == "/a/b")
        #expect(Names.normaliseWorkspace("/a/c/../b") == "/a/b")
        #expect(Names.normaliseWorkspace("/../a") == "/a")
        #expect(Names.normaliseWorkspace("/") == "/")
        #expect(Names.normaliseWorkspace("rel/x/") == "rel/x")
        #expect(Names.normaliseWorkspace("") == nil)
        #expect(Names.normaliseWorkspace("/a\u{0}b") == nil)
    }
}
