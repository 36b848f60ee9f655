import TurnstileCore
import TurnstileProtocol

/// Writes the telemetry answers: `performance` (a list of model snapshots) and `usage` (a
/// session's sums, under `usage` so its own `id` cannot clash with the request's).
public enum TelemetryEncoding {
    public static func performance(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, _ models: [ModelPerformance]) {
        Answers.beginSuccess(&w, id: id)
        w.key("models")
        w.beginArray()
        for model in models { snapshot(&w, model) }
        w.endArray()
        Answers.close(&w)
    }

    /// One model's snapshot with the seed's field names; times as RFC 3339 UTC.
    public static func snapshot(_ w: inout JSONWriter, _ model: ModelPerformance) {
        w.beginObject()
        w.key("model"); w.string(model.model)
        w.key("successful_completions"); w.int(model.successfulCompletions)
        w.key("failed_completions"); w.int(model.failedCompletions)
        w.key("success_rate"); w.double(model.successRate)
        w.key("avg_latency_ms"); w.double(model.averageLatencyMilliseconds)
        w.key("throughput"); w.double(model.throughput)
        w.key("window_secs"); w.int(model.windowSeconds)
        w.key("last_event_at"); w.string(model.lastEventAt.map(CivilTime.rfc3339))
        w.key("subscription_limit_reached"); w.bool(model.subscriptionLimitReached)
        w.key("subscription_limit_expires_at"); w.string(model.subscriptionLimitExpiresAt.map(CivilTime.rfc3339))
        w.endObject()
    }

    public static func usage(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, _ usage: UsageSnapshot) {
        Answers.beginSuccess(&w, id: id)
        w.key("usage")
        w.beginObject()
        w.key("id"); w.string(usage.id)
        w.key("window_start"); w.string(CivilTime.rfc3339(usage.windowStart))
        w.key("window_end"); w.string(CivilTime.rfc3339(usage.windowEnd))
        w.key("by_model")
        w.beginObject()
        for (model, sums) in usage.byModel.sorted(by: { $0.key < $1.key }) {
            w.dynamicKey(model)
            modelUsage(&w, sums)
        }
        w.endObject()
        w.key("totals")
        modelUsage(&w, usage.totals)
        w.endObject()
        Answers.close(&w)
    }

    private static func modelUsage(_ w: inout JSONWriter, _ usage: ModelUsage) {
        w.beginObject()
        w.key("input_tokens"); w.int(usage.inputTokens)
        w.key("output_tokens"); w.int(usage.outputTokens)
        w.key("total_tokens"); w.int(usage.totalTokens)
        w.key("cost_usd"); w.double(usage.costUSD)
        w.key("message_count"); w.int(usage.messageCount)
        w.endObject()
    }
}
