/// A model as a pool: `provider/model`. Limits, flags and throttles all apply per pool.
///
/// Parsed at the first `/`, each half trimmed of white space; an empty half is invalid. The
/// model half may itself contain `/` (`openrouter/meta-llama/llama-4`). Provider names are
/// case-insensitive (kept lowercased, as the seed's rate limiter keyed them); model names are
/// kept as given.
public struct ModelKey: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The provider: who is called (and throttled), e.g. `anthropic`, `zai`, `claude-cli`.
    public var provider: String
    /// The model name within the provider, e.g. `claude-opus-4`, `glm-5`.
    public var model: String

    /// Creates a key from already-trimmed halves.
    public init(provider: String, model: String) {
        self.provider = provider.lowercased()
        self.model = model
    }

    /// Parses `provider/model`.
    /// - Returns: nil if there is no `/`, or either half is empty after trimming.
    public init?(parsing text: String) {
        guard let slash = text.firstIndex(of: "/") else { return nil }
        let provider = text[..<slash].trimmingWhitespace()
        let model = text[text.index(after: slash)...].trimmingWhitespace()
        guard !provider.isEmpty, !model.isEmpty else { return nil }
        self.init(provider: provider, model: model)
    }

    /// Parses a fallback chain given as a comma-separated string
    /// (`"zai/glm-5, claude/opus"`), dropping entries that do not parse.
    public static func parseChain(_ text: String) -> [ModelKey] {
        parseChain(text.split(separator: ",").map(String.init))
    }

    /// Parses a fallback chain given as a list, dropping entries that do not parse.
    public static func parseChain(_ entries: [String]) -> [ModelKey] {
        entries.compactMap { ModelKey(parsing: $0) }
    }

    public var description: String { "\(provider)/\(model)" }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let key = ModelKey(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "not provider/model: \(text)"))
        }
        self = key
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Byte for byte, as every name in the broker (`ExactName`): canonically equivalent
    /// spellings are two pools, not one.
    public static func == (lhs: ModelKey, rhs: ModelKey) -> Bool {
        ExactName(lhs.provider) == ExactName(rhs.provider) && ExactName(lhs.model) == ExactName(rhs.model)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ExactName(provider))
        hasher.combine(ExactName(model))
    }

    public static func < (lhs: ModelKey, rhs: ModelKey) -> Bool {
        (ExactName(lhs.provider), ExactName(lhs.model)) < (ExactName(rhs.provider), ExactName(rhs.model))
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines (Foundation-free).
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }),
              let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
