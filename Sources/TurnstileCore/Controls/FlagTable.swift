/// Subscription-limit flags in force, by model string (bare name or `provider/model`), each
/// with its end on the monotonic clock (protocol/PROTOCOL.md §8.12: the model limiter treats a flagged model as
/// full until then).
///
/// It keeps a lower bound of the earliest end, so that every broker call can tell in O(1)
/// whether a flag may have ended since the last one (`Broker.liftEndedBlocks`).
struct FlagTable: Sendable {
    private var ends: [String: Instant] = [:]
    /// No flag ends before this (exact after `expire`; nil when there are none).
    private(set) var earliestEnd: Instant?

    /// The end of a model's flag; setting one keeps `earliestEnd` a lower bound.
    subscript(_ model: String) -> Instant? {
        get { ends[model] }
        set {
            ends[model] = newValue
            if let end = newValue { earliestEnd = min(earliestEnd ?? end, end) }
        }
    }

    var isEmpty: Bool { ends.isEmpty }

    /// Lifts a model's flag now.
    /// - Returns: whether one was in force.
    mutating func remove(_ model: String, now: Instant) -> Bool {
        guard let end = ends.removeValue(forKey: model) else { return false }
        earliestEnd = ends.values.min()
        return end > now
    }

    /// Forgets flags that have ended.
    /// - Returns: true if any ended (the broker then dispatches).
    mutating func expire(now: Instant) -> Bool {
        let before = ends.count
        ends = ends.filter { $0.value > now }
        earliestEnd = ends.values.min()
        return ends.count != before
    }

    /// Keeps only the flags of models `keep` accepts.
    mutating func retain(_ keep: (String) -> Bool) {
        ends = ends.filter { keep($0.key) }
        earliestEnd = ends.values.min()
    }

    /// The models flagged at `now`.
    func active(now: Instant) -> [String] { ends.compactMap { $0.value > now ? $0.key : nil } }
}
