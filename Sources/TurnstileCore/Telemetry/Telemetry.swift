/// Model telemetry (SPEC §4): completion events per model in a rolling window, the
/// performance snapshot derived from them, session usage, and subscription-limit flags.
///
/// Times are wall times (events are reported as RFC 3339 and survive restarts). Events are
/// pruned when a model records and filtered again at every read, so an event older than the
/// window never counts. Each model keeps at most `eventsPerModelMax` events.
public struct Telemetry: Sendable {
    /// A subscription-limit flag that `record` raised.
    public struct Flag: Sendable, Equatable {
        /// The model string it applies to: bare name (every provider) or `provider/model`.
        public var model: String
        /// When it ends.
        public var expiresAt: WallTime
    }

    /// Bound on the events kept per model (oldest dropped first).
    public static let eventsPerModelMax = 10_000

    public private(set) var windowSeconds: UInt64
    public private(set) var subscriptionLimitTTLSeconds: UInt64
    private var events: [String: [CompletionEvent]] = [:]
    private var limits: [String: WallTime] = [:]

    /// Creates an empty store.
    public init(windowSeconds: UInt64 = 3600, subscriptionLimitTTLSeconds: UInt64 = 3600) {
        self.windowSeconds = windowSeconds
        self.subscriptionLimitTTLSeconds = subscriptionLimitTTLSeconds
    }

    /// The key telemetry is kept under: `provider/model` with the provider lowercased, or the
    /// trimmed bare name.
    public static func modelKey(_ text: String) -> String {
        ModelKey(parsing: text)?.description ?? text.trimmingWhitespace()
    }

    /// Applies new settings (on reload); events are kept and the next read uses the new window.
    public mutating func configure(windowSeconds: UInt64, subscriptionLimitTTLSeconds: UInt64) {
        self.windowSeconds = windowSeconds
        self.subscriptionLimitTTLSeconds = subscriptionLimitTTLSeconds
    }

    /// Records one completion.
    /// - Returns: the flag raised if the event says the subscription's limit was reached.
    @discardableResult
    public mutating func record(_ event: CompletionEvent) -> Flag? {
        var event = event
        event.model = Self.modelKey(event.model)
        var flag: Flag?
        if !event.success || event.error != nil || event.status != nil,
           SubscriptionLimitDetector.isLimit(error: event.error, status: event.status) {
            let expiry = event.completedAt.adding(milliseconds: Self.milliseconds(seconds: subscriptionLimitTTLSeconds))
            limits[event.model] = expiry
            flag = Flag(model: event.model, expiresAt: expiry)
        }
        var list = events[event.model, default: []]
        list.append(event)
        let cutoff = self.cutoff(event.completedAt)
        if let firstKept = list.firstIndex(where: { $0.completedAt > cutoff }) {
            list.removeFirst(firstKept)
        } else {
            list.removeAll()
        }
        if list.count > Self.eventsPerModelMax { list.removeFirst(list.count - Self.eventsPerModelMax) }
        events[event.model] = list
        return flag
    }

    /// The performance snapshot of one model at `now`.
    public func performance(of model: String, now: WallTime) -> ModelPerformance {
        let key = Self.modelKey(model)
        var snapshot = ModelPerformance.empty(model: key, windowSeconds: windowSeconds)
        let cutoff = self.cutoff(now)
        var latencySum: Double = 0
        for event in events[key] ?? [] where event.completedAt > cutoff {
            if event.success {
                snapshot.successfulCompletions = snapshot.successfulCompletions.addingSaturated(1)
                latencySum += Double(event.latencyMilliseconds)
            } else {
                snapshot.failedCompletions = snapshot.failedCompletions.addingSaturated(1)
            }
            snapshot.lastEventAt = event.completedAt
        }
        // Counts are bounded by the events kept, and the latency sum of at most that many
        // 64-bit latencies stays far inside a double's range: nothing here can overflow.
        let total = snapshot.successfulCompletions.addingSaturated(snapshot.failedCompletions)
        if snapshot.successfulCompletions > 0 {
            snapshot.averageLatencyMilliseconds = latencySum / Double(snapshot.successfulCompletions)
        }
        if total > 0 { snapshot.successRate = Double(snapshot.successfulCompletions) / Double(total) }
        if windowSeconds > 0 { snapshot.throughput = Double(snapshot.successfulCompletions) / Double(windowSeconds) }
        if let expiry = limits[key] {
            snapshot.subscriptionLimitExpiresAt = expiry
            snapshot.subscriptionLimitReached = now < expiry
        }
        return snapshot
    }

    /// Snapshots of every model with events or a flag, sorted by model.
    public func performances(now: WallTime) -> [ModelPerformance] {
        Set(events.keys).union(limits.keys).sorted().map { performance(of: $0, now: now) }
    }

    /// Token, cost and message sums of one session over the window.
    public func usage(session: String, now: WallTime) -> UsageSnapshot {
        let cutoff = self.cutoff(now)
        var byModel: [String: ModelUsage] = [:]
        for (model, list) in events {
            for event in list where event.sessionID == session && event.completedAt > cutoff {
                byModel[model, default: ModelUsage()].add(event)
            }
        }
        var totals = ModelUsage()
        for usage in byModel.values { totals.merge(usage) }
        return UsageSnapshot(id: session, windowStart: cutoff, windowEnd: now, byModel: byModel, totals: totals)
    }

    /// Flags in force at `now`, by model string.
    public func activeFlags(now: WallTime) -> [Flag] {
        limits.compactMap { now < $0.value ? Flag(model: $0.key, expiresAt: $0.value) : nil }
            .sorted { $0.model < $1.model }
    }

    /// The summary to persist: every event still in the window and every flag still in force.
    public func exportSummary(now: WallTime) -> TelemetrySummary {
        let cutoff = self.cutoff(now)
        let kept = events.keys.sorted().flatMap { key in events[key]!.filter { $0.completedAt > cutoff } }
        let flags = limits.filter { now < $0.value }
        return TelemetrySummary(windowSeconds: windowSeconds, exportedAt: now,
                                modelPerformances: performances(now: now), events: kept, subscriptionLimits: flags)
    }

    /// Restores a summary: its events still inside this store's window, and its flags still in
    /// force (from `subscription_limits`, or from the snapshots of a seed-format summary). A
    /// snapshot without events restores no counts: they cannot be restored without inventing
    /// events.
    /// - Returns: the flags restored, so the model limiter can honour them.
    @discardableResult
    public mutating func importSummary(_ summary: TelemetrySummary, now: WallTime) -> [Flag] {
        let cutoff = self.cutoff(now)
        for event in summary.events where event.completedAt > cutoff && event.completedAt <= now {
            events[Self.modelKey(event.model), default: []].append(event)
        }
        for key in events.keys {
            events[key]!.sort { $0.completedAt < $1.completedAt }
            if events[key]!.count > Self.eventsPerModelMax {
                events[key]!.removeFirst(events[key]!.count - Self.eventsPerModelMax)
            }
        }
        var restored: [Flag] = []
        var candidates = summary.subscriptionLimits
        for snapshot in summary.modelPerformances {
            if let expiry = snapshot.subscriptionLimitExpiresAt, candidates[snapshot.model] == nil {
                candidates[snapshot.model] = expiry
            }
        }
        for (model, expiry) in candidates.sorted(by: { $0.key < $1.key }) where now < expiry {
            let key = Self.modelKey(model)
            limits[key] = max(expiry, limits[key] ?? expiry)
            restored.append(Flag(model: key, expiresAt: limits[key]!))
        }
        return restored
    }

    private func cutoff(_ now: WallTime) -> WallTime {
        now.adding(milliseconds: -Self.milliseconds(seconds: windowSeconds))
    }

    /// Seconds as milliseconds, saturating at `Int64.max` (whose negation is still in range).
    private static func milliseconds(seconds: UInt64) -> Int64 {
        Int64(clamping: seconds).multipliedSaturated(by: 1000)
    }
}
