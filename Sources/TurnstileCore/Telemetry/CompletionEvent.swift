/// Token counts of one completion, as the seed's `TokenBreakdown` (all optional on the wire).
public struct TokenBreakdown: Sendable, Equatable, Codable {
    public var total: UInt64 = 0
    public var input: UInt64 = 0
    public var output: UInt64 = 0
    public var reasoning: UInt64 = 0
    public var cacheRead: UInt64 = 0
    public var cacheWrite: UInt64 = 0

    public init(total: UInt64 = 0, input: UInt64 = 0, output: UInt64 = 0,
                reasoning: UInt64 = 0, cacheRead: UInt64 = 0, cacheWrite: UInt64 = 0) {
        self.total = total
        self.input = input
        self.output = output
        self.reasoning = reasoning
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
    }

    enum CodingKeys: String, CodingKey {
        case total, input, output, reasoning
        case cacheRead = "cache_read"
        case cacheWrite = "cache_write"
    }
}

/// One model call that finished, as an agent wrapper reports it with `record`.
public struct CompletionEvent: Sendable, Equatable, Codable {
    /// `provider/model` or a bare model name; telemetry is kept per this string.
    public var model: String
    /// The agent session it belongs to, for `usage`.
    public var sessionID: String?
    /// When it finished (the daemon's receipt time).
    public var completedAt: WallTime
    /// How long the call took.
    public var latencyMilliseconds: UInt64
    /// Whether it succeeded.
    public var success: Bool
    /// Tokens used.
    public var tokens: TokenBreakdown
    /// Cost in US dollars (0 if unknown).
    public var costUSD: Double
    /// The error text of a failure.
    public var error: String?
    /// The HTTP status of a failure, if the client knows it.
    public var status: Int?

    public init(model: String, sessionID: String? = nil, completedAt: WallTime, latencyMilliseconds: UInt64,
                success: Bool, tokens: TokenBreakdown = TokenBreakdown(), costUSD: Double = 0,
                error: String? = nil, status: Int? = nil) {
        self.model = model
        self.sessionID = sessionID
        self.completedAt = completedAt
        self.latencyMilliseconds = latencyMilliseconds
        self.success = success
        self.tokens = tokens
        self.costUSD = costUSD
        self.error = error
        self.status = status
    }

    enum CodingKeys: String, CodingKey {
        case model, success, tokens, error, status
        case sessionID = "session_id"
        case completedAt = "completed_at"
        case latencyMilliseconds = "latency_ms"
        case costUSD = "cost_usd"
    }
}

/// Recognises a provider's "you are out of quota" answers (protocol/PROTOCOL.md §8.10 to §8.14), which flag a model as
/// subscription-limited so the limiter treats it as full until the flag's ttl passes.
public enum SubscriptionLimitDetector {
    /// Phrases matched case-insensitively anywhere in the error text.
    public static let patterns = [
        "weekly session limit", "monthly limit", "rate limit exceeded", "quota exceeded",
        "too many requests", "capacity limit", "spending limit", "billing limit", "usage limit",
        "subscription limit", "hit your limit", "plan limit", "tier limit", "usage cap",
        "daily limit", "hourly limit", "out of quota", "quota exhausted", "subscription quota",
        "insufficient balance", "insufficient_quota",
    ]

    /// Whether an error text or HTTP status says the subscription's limit was reached.
    /// `429` counts as a whole number only: in "Error 429:" but not in "14290 tokens".
    public static func isLimit(error: String?, status: Int? = nil) -> Bool {
        if status == 429 { return true }
        guard let error else { return false }
        let lowered = error.lowercased()
        if patterns.contains(where: { lowered.contains($0) }) { return true }
        return containsWholeNumber(lowered, 429)
    }

    /// Whether `text` holds `number` as a maximal run of ASCII digits.
    static func containsWholeNumber(_ text: String, _ number: Int) -> Bool {
        var run: UInt64 = 0
        var runLength = 0
        for byte in text.utf8 {
            if byte >= 48 && byte <= 57 {
                if runLength < 19 { run = run * 10 + UInt64(byte - 48) }
                runLength += 1
            } else {
                if runLength > 0 && runLength < 19 && run == UInt64(number) { return true }
                run = 0
                runLength = 0
            }
        }
        return runLength > 0 && runLength < 19 && run == UInt64(number)
    }
}
