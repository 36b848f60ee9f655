/// A model's cost tier: it sets the default concurrency limit and steers capability fallback,
/// which looks for a model of the same tier or one cheaper.
public enum CostTier: String, CaseIterable, Sendable, Codable, Hashable {
    case premium, standard, cheap

    /// Default concurrency limit of a pool of this tier when the config names none.
    public var defaultConcurrencyLimit: Int {
        switch self {
        case .premium: 3
        case .standard: 5
        case .cheap: 8
        }
    }

    /// The next tier down (premium → standard → cheap), nil for cheap.
    public var cheaper: CostTier? {
        switch self {
        case .premium: .standard
        case .standard: .cheap
        case .cheap: nil
        }
    }
}

/// What Turnstile knows of a model without being told: its tier and whether it can call tools.
public struct ModelTraits: Hashable, Sendable {
    /// Cost tier.
    public var tier: CostTier
    /// Whether the model supports tool use (capability fallback keeps it).
    public var tools: Bool

    public init(tier: CostTier, tools: Bool) {
        self.tier = tier
        self.tools = tools
    }
}

/// The built-in catalog of well-known model names, consulted when the config gives a model no
/// `tier` or `tools`. A name matches an entry exactly, or by the longest entry that is a prefix
/// of it ending at a `-`, `.`, `:` or `@` (so `claude-opus-4-1-20250805` is `claude-opus-4`, and
/// `glm-4.7-flash` is not `glm-4.7`). Unknown names are standard with tool use.
public enum ModelCatalog {
    /// Traits of a name no entry matches.
    public static let unknown = ModelTraits(tier: .standard, tools: true)

    /// The entries, by family. Kept short and conservative: the config overrides any of them.
    static let entries: [String: ModelTraits] = {
        var table: [String: ModelTraits] = [:]
        func add(_ tier: CostTier, tools: Bool = true, _ names: String...) {
            for name in names { table[name] = ModelTraits(tier: tier, tools: tools) }
        }
        // Zhipu GLM (the seed's own examples).
        add(.premium, "glm-5", "glm-4.6")
        add(.standard, "glm-4.7", "glm-4.5")
        add(.cheap, "glm-4.7-flash", "glm-4.5-air", "glm-4.5-flash", "glm-4-flash")
        // Anthropic, by API name and by Claude Code alias.
        add(.premium, "claude-opus-4", "claude-opus-4-1", "claude-opus-4-5", "claude-3-opus", "opus")
        add(.standard, "claude-sonnet-4", "claude-sonnet-4-5", "claude-3-7-sonnet", "claude-3-5-sonnet", "sonnet")
        add(.cheap, "claude-haiku-4-5", "claude-3-5-haiku", "claude-3-haiku", "haiku")
        // OpenAI.
        add(.premium, "gpt-5", "gpt-5-codex", "gpt-4.1", "o3", "o1", "gpt-4.5")
        add(.standard, "gpt-5-mini", "gpt-4o", "o4-mini", "o3-mini", "codex-mini")
        add(.cheap, "gpt-5-nano", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano")
        add(.standard, tools: false, "o1-mini")
        // Google.
        add(.premium, "gemini-2.5-pro", "gemini-3-pro")
        add(.standard, "gemini-2.5-flash", "gemini-2.0-flash")
        add(.cheap, "gemini-2.5-flash-lite", "gemini-2.0-flash-lite")
        // Others commonly run behind coding agents.
        add(.premium, "grok-4", "kimi-k2-thinking")
        add(.standard, "kimi-k2", "qwen3-coder", "deepseek-chat", "deepseek-v3", "minimax-m2", "devstral-medium")
        add(.standard, tools: false, "deepseek-reasoner", "deepseek-r1")
        add(.cheap, "qwen3-coder-flash", "devstral-small", "mistral-small", "codestral")
        return table
    }()

    /// Looks a model name up.
    /// - Parameter name: the model half of a `provider/model`, or a bare model name.
    /// - Returns: the entry's traits, or `unknown`.
    public static func traits(of name: String) -> ModelTraits {
        let lowered = name.lowercased()
        if let exact = entries[lowered] { return exact }
        // Try the prefixes ending just before each boundary, longest first: a few dictionary
        // probes instead of a scan of the catalog.
        let bytes = Array(lowered.utf8)
        let boundaries: Set<UInt8> = [UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "@")]
        for end in stride(from: bytes.count - 1, to: 0, by: -1) where boundaries.contains(bytes[end]) {
            if let traits = entries[String(decoding: bytes[..<end], as: UTF8.self)] { return traits }
        }
        return unknown
    }
}
