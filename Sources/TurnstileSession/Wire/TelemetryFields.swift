import TurnstileCore
import TurnstileProtocol

/// The fields of a `record` (protocol/PROTOCOL.md §8.10 to §8.14): a completion event as an agent wrapper reports it.
enum TelemetryFields {
    private static let tokenFields = KnownFields(["total", "input", "output", "reasoning", "cache_read", "cache_write"])

    /// Decodes `model`, `session_id`, `latency_ms`, `success`, `tokens`, `cost_usd`, `error`,
    /// `status`. The time is the daemon's, stamped later.
    static func decodeRecord(_ fields: FieldReader) throws(RequestError) -> CompletionEvent {
        let model = try fields.requiredLabel("model")
        var tokens = TokenBreakdown()
        if let value = fields.value("tokens") {
            guard let object = value.objectValue else { throw fields.fail("tokens", "tokens must be an object") }
            let inner = FieldReader(object: object)
            try inner.rejectUnknown(Self.tokenFields, nested: "tokens.")
            func count(_ name: StaticString) throws(RequestError) -> UInt64 {
                do {
                    return UInt64(try inner.integer(name, in: 0...Int64.max) ?? 0)
                } catch {
                    throw RequestError(.badRequest, field: "tokens.\(name)", error.message)
                }
            }
            tokens = TokenBreakdown(total: try count("total"), input: try count("input"), output: try count("output"),
                                    reasoning: try count("reasoning"), cacheRead: try count("cache_read"),
                                    cacheWrite: try count("cache_write"))
        }
        let cost = try fields.double("cost_usd") ?? 0
        if cost < 0 { throw fields.fail("cost_usd", "cost_usd must not be negative") }
        var error = try fields.string("error")
        if let text = error, text.utf8.count > 4096 { error = String(decoding: text.utf8.prefix(4096), as: UTF8.self) }
        guard let latency = try fields.integer("latency_ms", in: 0...Int64.max) else {
            throw fields.fail("latency_ms", "latency_ms is required")
        }
        return CompletionEvent(
            model: model, sessionID: try fields.label("session_id"), completedAt: WallTime(unixMilliseconds: 0),
            latencyMilliseconds: UInt64(latency), success: try fields.requiredBool("success"), tokens: tokens,
            costUSD: cost, error: error, status: try fields.integer("status", in: 100...599).map { Int($0) })
    }
}
