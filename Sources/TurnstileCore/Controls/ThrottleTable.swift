/// Provider throttles, scoped to tenants (protocol/PROTOCOL.md §8.11): "provider P answered 'rate limited' to
/// tenant T; do not call it for T until then".
///
/// A new throttle never shortens a longer one already in force (max-merge). Throttles end by
/// the clock; the broker asks for the next end to arm its timer and dispatches when one ends.
public struct ThrottleTable: Sendable {
    /// A throttle's identity: who is throttled by whom.
    public struct Key: Hashable, Sendable, Comparable {
        /// The tenant (`local` unless the acquire names one).
        public var tenant: String
        /// The provider, lowercased.
        public var provider: String

        public init(tenant: String, provider: String) {
            self.tenant = tenant
            self.provider = provider.lowercased()
        }

        /// Byte for byte, as every name in the broker (`ExactName`).
        public static func == (lhs: Key, rhs: Key) -> Bool {
            ExactName(lhs.tenant) == ExactName(rhs.tenant) && ExactName(lhs.provider) == ExactName(rhs.provider)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(ExactName(tenant))
            hasher.combine(ExactName(provider))
        }

        public static func < (lhs: Key, rhs: Key) -> Bool {
            (ExactName(lhs.tenant), ExactName(lhs.provider)) < (ExactName(rhs.tenant), ExactName(rhs.provider))
        }
    }

    private var until: [Key: Instant] = [:]
    /// No throttle ends before this (exact after `expire`; nil when there are none), so that
    /// every broker call can tell in O(1) whether one may have ended.
    public private(set) var earliestEnd: Instant?

    public init() {}

    /// Records a throttle.
    /// - Returns: when the (possibly longer, pre-existing) throttle ends.
    @discardableResult
    public mutating func record(_ key: Key, retryAfterMilliseconds: UInt64, now: Instant) -> Instant {
        let proposed = now.adding(milliseconds: retryAfterMilliseconds)
        let current = until[key].flatMap { $0 > now ? $0 : nil }
        let end = max(proposed, current ?? proposed)
        if end > now {
            until[key] = end
            earliestEnd = min(earliestEnd ?? end, end)
        } else {
            until[key] = nil
        }
        return end
    }

    /// Lifts the throttle on `key` now (an operator's `clear`).
    /// - Returns: whether one was in force.
    public mutating func clear(_ key: Key, now: Instant) -> Bool {
        guard let end = until.removeValue(forKey: key) else { return false }
        earliestEnd = until.values.min()
        return end > now
    }

    /// Milliseconds until the throttle on `key` ends, or nil if none is in force.
    public func remaining(_ key: Key, now: Instant) -> UInt64? {
        guard let end = until[key], end > now else { return nil }
        return end.milliseconds(since: now)
    }

    /// Forgets throttles that have ended.
    /// - Returns: true if any ended (the broker then dispatches).
    public mutating func expire(now: Instant) -> Bool {
        let before = until.count
        until = until.filter { $0.value > now }
        earliestEnd = until.values.min()
        return until.count != before
    }


    /// Throttles in force, sorted by tenant then provider, for status.
    public func active(now: Instant) -> [(key: Key, remainingMilliseconds: UInt64)] {
        until.compactMap { key, end in end > now ? (key, end.milliseconds(since: now)) : nil }
            .sorted { $0.key < $1.key }
    }
}

/// The `Retry-After` value a provider sent, as a client forwards it.
public enum RetryAfter: Sendable, Equatable {
    /// A delay already in milliseconds (`retry_after_ms`).
    case milliseconds(UInt64)
    /// The header as given (`retry_after`): delay-seconds or an HTTP date.
    case header(String)

    /// Longest throttle accepted: a week. A provider asking for more is more likely a bug
    /// than a plan, and a throttle cannot be lifted early.
    public static let millisecondsMax: UInt64 = 7 * 86_400_000

    /// The delay in milliseconds, relative to `wall` for an HTTP date (a date in the past is
    /// 0), clamped to `millisecondsMax`: a provider asking for longer, in seconds however many
    /// digits long or in a date however far ahead, gets the longest throttle.
    /// - Returns: nil if the header is neither a whole number of seconds nor an HTTP date.
    public func delayMilliseconds(wall: WallTime) -> UInt64? {
        switch self {
        case .milliseconds(let ms):
            return min(ms, Self.millisecondsMax)
        case .header(let text):
            let trimmed = text.trimmingWhitespace()
            if !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                // More digits than a UInt64 holds is still "longer than the longest throttle".
                let seconds = UInt64(trimmed) ?? UInt64.max
                return min(seconds.multipliedSaturated(by: 1000), Self.millisecondsMax)
            }
            guard let date = CivilTime.parseHTTPDate(trimmed) else { return nil }
            let delta = date.milliseconds(since: wall)
            return delta > 0 ? min(UInt64(delta), Self.millisecondsMax) : 0
        }
    }
}
