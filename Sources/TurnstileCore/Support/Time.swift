/// A point on the daemon's monotonic clock, in milliseconds.
///
/// The core never reads a clock: every operation receives `now` from its caller. The daemon
/// fills it from libuv's monotonic loop time, tests with whatever numbers they like, so every
/// deadline (lease expiry, wait timeout, throttle end) is deterministic under test.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Milliseconds since an arbitrary origin (the daemon's boot of its loop clock).
    public var milliseconds: UInt64

    /// Creates an instant.
    /// - Parameter milliseconds: milliseconds since the clock's origin.
    public init(milliseconds: UInt64) {
        self.milliseconds = milliseconds
    }

    /// The instant `duration` milliseconds later, saturating instead of overflowing, so that
    /// "wait forever" can be expressed as a very large duration.
    public func adding(milliseconds duration: UInt64) -> Instant {
        let (sum, overflow) = milliseconds.addingReportingOverflow(duration)
        return Instant(milliseconds: overflow ? UInt64.max : sum)
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    public func milliseconds(since earlier: Instant) -> UInt64 {
        milliseconds >= earlier.milliseconds ? milliseconds - earlier.milliseconds : 0
    }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }

    public var description: String { "t+\(milliseconds)ms" }
}

/// A point in civil time: milliseconds since the Unix epoch, UTC.
///
/// Only the parts of Turnstile that must speak of calendar time use it: telemetry events
/// (reported as RFC 3339 strings and kept across restarts) and `Retry-After` HTTP dates.
/// Deadlines never use it, so a wall-clock jump cannot expire a lease.
public struct WallTime: Comparable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var unixMilliseconds: Int64

    /// Creates a wall time.
    /// - Parameter unixMilliseconds: milliseconds since the Unix epoch.
    public init(unixMilliseconds: Int64) {
        self.unixMilliseconds = unixMilliseconds
    }

    /// The wall time `duration` milliseconds later (or earlier, if negative), saturating at
    /// the ends of the range instead of overflowing.
    public func adding(milliseconds duration: Int64) -> WallTime {
        WallTime(unixMilliseconds: unixMilliseconds.addingSaturated(duration))
    }

    /// Milliseconds from `earlier` to `self`, saturating instead of overflowing.
    public func milliseconds(since earlier: WallTime) -> Int64 {
        let (difference, overflow) = unixMilliseconds.subtractingReportingOverflow(earlier.unixMilliseconds)
        guard overflow else { return difference }
        return earlier.unixMilliseconds < 0 ? .max : .min
    }

    public static func < (lhs: WallTime, rhs: WallTime) -> Bool {
        lhs.unixMilliseconds < rhs.unixMilliseconds
    }

    public init(from decoder: any Decoder) throws {
        unixMilliseconds = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(unixMilliseconds)
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T09:30:00.123Z`.
    public var description: String { CivilTime.rfc3339(self) }
}
