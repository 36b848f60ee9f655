/// What `performance` answers for one model (the seed's `ModelPerformanceSnapshot`).
public struct ModelPerformance: Sendable, Equatable, Codable {
    public var model: String
    public var successfulCompletions: UInt64
    public var failedCompletions: UInt64
    /// Successes over all events in the window, 0 with no events.
    public var successRate: Double
    /// Mean latency of the successes in the window, 0 with none.
    public var averageLatencyMilliseconds: Double
    /// Successes per second of window.
    public var throughput: Double
    public var windowSeconds: UInt64
    /// The newest event in the window.
    public var lastEventAt: WallTime?
    /// Whether the model is flagged subscription-limited now.
    public var subscriptionLimitReached: Bool
    /// When the flag ends (kept after it passed, as the seed reports it).
    public var subscriptionLimitExpiresAt: WallTime?

    /// The zero snapshot of a model with no events.
    public static func empty(model: String, windowSeconds: UInt64) -> ModelPerformance {
        ModelPerformance(model: model, successfulCompletions: 0, failedCompletions: 0, successRate: 0,
                         averageLatencyMilliseconds: 0, throughput: 0, windowSeconds: windowSeconds,
                         lastEventAt: nil, subscriptionLimitReached: false, subscriptionLimitExpiresAt: nil)
    }

    enum CodingKeys: String, CodingKey {
        case model, throughput
        case successfulCompletions = "successful_completions"
        case failedCompletions = "failed_completions"
        case successRate = "success_rate"
        case averageLatencyMilliseconds = "avg_latency_ms"
        case windowSeconds = "window_secs"
        case lastEventAt = "last_event_at"
        case subscriptionLimitReached = "subscription_limit_reached"
        case subscriptionLimitExpiresAt = "subscription_limit_expires_at"
    }
}

/// Token, cost and message sums of one model within a session (the seed's `ModelUsage`).
public struct ModelUsage: Sendable, Equatable, Codable {
    public var inputTokens: UInt64 = 0
    public var outputTokens: UInt64 = 0
    public var totalTokens: UInt64 = 0
    public var costUSD: Double = 0
    public var messageCount: UInt64 = 0

    public init() {}

    /// Adds another usage into this one. Every sum saturates: token counts at `UInt64.max`,
    /// the cost at the largest finite double (protocol/PROTOCOL.md, `usage`), so that no
    /// recorded numbers can overflow a sum.
    public mutating func merge(_ other: ModelUsage) {
        inputTokens = inputTokens.addingSaturated(other.inputTokens)
        outputTokens = outputTokens.addingSaturated(other.outputTokens)
        totalTokens = totalTokens.addingSaturated(other.totalTokens)
        costUSD = costUSD.addingSaturated(other.costUSD)
        messageCount = messageCount.addingSaturated(other.messageCount)
    }

    /// Adds one completion's tokens and cost, as one more message.
    public mutating func add(_ event: CompletionEvent) {
        inputTokens = inputTokens.addingSaturated(event.tokens.input)
        outputTokens = outputTokens.addingSaturated(event.tokens.output)
        totalTokens = totalTokens.addingSaturated(event.tokens.total)
        costUSD = costUSD.addingSaturated(event.costUSD)
        messageCount = messageCount.addingSaturated(1)
    }

    enum CodingKeys: String, CodingKey {
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case totalTokens = "total_tokens"
        case costUSD = "cost_usd"
        case messageCount = "message_count"
    }
}

/// What `usage` answers for one session (the seed's `UsageSnapshot`).
public struct UsageSnapshot: Sendable, Equatable, Codable {
    /// The session id.
    public var id: String
    public var windowStart: WallTime
    public var windowEnd: WallTime
    public var byModel: [String: ModelUsage]
    public var totals: ModelUsage

    enum CodingKeys: String, CodingKey {
        case id, totals
        case windowStart = "window_start"
        case windowEnd = "window_end"
        case byModel = "by_model"
    }
}

/// What survives a restart of the telemetry: the real events still inside the window and the
/// subscription-limit flags still in force. Unlike the seed's summary, which synthesised up to
/// ten events from each snapshot, nothing is invented: the counts after a restart are the
/// counts before it. `model_performances` is kept for readers of the file.
public struct TelemetrySummary: Sendable, Equatable, Codable {
    public var id = "telemetry_summary"
    public var windowSeconds: UInt64
    public var exportedAt: WallTime
    public var modelPerformances: [ModelPerformance]
    public var events: [CompletionEvent]
    public var subscriptionLimits: [String: WallTime]

    public init(windowSeconds: UInt64, exportedAt: WallTime, modelPerformances: [ModelPerformance],
                events: [CompletionEvent] = [], subscriptionLimits: [String: WallTime] = [:]) {
        self.windowSeconds = windowSeconds
        self.exportedAt = exportedAt
        self.modelPerformances = modelPerformances
        self.events = events
        self.subscriptionLimits = subscriptionLimits
    }

    enum CodingKeys: String, CodingKey {
        case id, events
        case windowSeconds = "window_secs"
        case exportedAt = "exported_at"
        case modelPerformances = "model_performances"
        case subscriptionLimits = "subscription_limits"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? "telemetry_summary"
        windowSeconds = try c.decode(UInt64.self, forKey: .windowSeconds)
        exportedAt = try c.decode(WallTime.self, forKey: .exportedAt)
        modelPerformances = try c.decodeIfPresent([ModelPerformance].self, forKey: .modelPerformances) ?? []
        events = try c.decodeIfPresent([CompletionEvent].self, forKey: .events) ?? []
        subscriptionLimits = try c.decodeIfPresent([String: WallTime].self, forKey: .subscriptionLimits) ?? [:]
    }
}
