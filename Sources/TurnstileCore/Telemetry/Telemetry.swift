/// Model telemetry (protocol/PROTOCOL.md §8.10 to §8.14): completion events per model in a rolling window, the
/// performance snapshot derived from them, session usage, and subscription-limit flags.
///
/// Times are wall times (events are reported as RFC 3339 and survive restarts). Events are
/// pruned when a model records and filtered again at every read, so an event older than the
/// window never counts.
///
/// Clients name models and sessions freely, so both are bounded (`Bounds`), as are the events
/// kept per model: past a bound the least recently recorded model or session, or a model's
/// oldest event, is evicted, and `evictions` counts them.
public struct Telemetry: Sendable {
    /// A subscription-limit flag that `record` raised.
    public struct Flag: Sendable, Equatable {
        /// The model string it applies to: bare name (every provider) or `provider/model`.
        public var model: String
        /// When it ends.
        public var expiresAt: WallTime
    }

    /// How much telemetry is kept (`[telemetry]` `max_models`, `max_events_per_model`,
    /// `max_sessions`), so that a client recording a new model or session name each time
    /// cannot grow the daemon's memory and state file without end.
    public struct Bounds: Sendable, Equatable {
        /// Models with events or a flag.
        public var models = 1000
        /// Events per model (the oldest go first).
        public var eventsPerModel = 10_000
        /// Sessions whose usage is kept.
        public var sessions = 10_000

        public init(models: Int = 1000, eventsPerModel: Int = 10_000, sessions: Int = 10_000) {
            self.models = max(models, 1)
            self.eventsPerModel = max(eventsPerModel, 1)
            self.sessions = max(sessions, 1)
        }
    }

    /// What was evicted to stay within the bounds, since the daemon started
    /// (`turnstile_telemetry_evictions_total{kind}`).
    public struct Evictions: Sendable, Equatable {
        /// Models forgotten, with their events and flag.
        public var models: UInt64 = 0
        /// Events dropped from a model past its bound (not those that aged out of the window).
        public var events: UInt64 = 0
        /// Sessions whose usage was forgotten.
        public var sessions: UInt64 = 0

        public init() {}
    }

    public private(set) var windowSeconds: UInt64
    public private(set) var subscriptionLimitTTLSeconds: UInt64
    public private(set) var bounds: Bounds
    public private(set) var evictions = Evictions()
    private var events: [String: [CompletionEvent]] = [:]
    private var limits: [String: WallTime] = [:]
    /// Models with events or a flag, least recently recorded first.
    private var models = RecencyList<String>()
    /// Sessions whose usage is kept, least recently recorded first. An event of a session no
    /// longer here still counts for its model's performance, not for any usage.
    private var sessions = RecencyList<String>()

    /// Creates an empty store.
    public init(windowSeconds: UInt64 = 3600, subscriptionLimitTTLSeconds: UInt64 = 3600, bounds: Bounds = Bounds()) {
        self.windowSeconds = windowSeconds
        self.subscriptionLimitTTLSeconds = subscriptionLimitTTLSeconds
        self.bounds = bounds
    }

    /// The key telemetry is kept under: `provider/model` with the provider lowercased, or the
    /// trimmed bare name.
    public static func modelKey(_ text: String) -> String {
        ModelKey(parsing: text)?.description ?? text.trimmingWhitespace()
    }

    /// Applies new settings (on reload); events are kept and the next read uses the new window.
    /// Lowered bounds evict at once.
    public mutating func configure(windowSeconds: UInt64, subscriptionLimitTTLSeconds: UInt64, bounds: Bounds) {
        self.windowSeconds = windowSeconds
        self.subscriptionLimitTTLSeconds = subscriptionLimitTTLSeconds
        self.bounds = bounds
        evictModelsAndSessions()
        for key in events.keys where events[key]!.count > bounds.eventsPerModel {
            let excess = events[key]!.count - bounds.eventsPerModel
            events[key]!.removeFirst(excess)
            evictions.events = evictions.events.addingSaturated(UInt64(excess))
        }
    }

    /// Whether the store knows a model (it has events or a flag).
    public func knows(model: String) -> Bool { models.contains(model) }

    /// Lifts a model's subscription-limit flag (its events stay).
    /// - Returns: whether one was in force at `now`.
    public mutating func unflag(model: String, now: WallTime) -> Bool {
        guard let end = limits.removeValue(forKey: Self.modelKey(model)) else { return false }
        return now < end
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
        insert(event)
        let cutoff = self.cutoff(event.completedAt)
        if let firstKept = events[event.model]!.firstIndex(where: { $0.completedAt > cutoff }) {
            events[event.model]!.removeFirst(firstKept)
        }
        return flag
    }

    /// Adds an event (its model already keyed) and evicts what the bounds no longer allow.
    private mutating func insert(_ event: CompletionEvent) {
        models.touch(event.model)
        if let session = event.sessionID { sessions.touch(session) }
        events[event.model, default: []].append(event)
        if events[event.model]!.count > bounds.eventsPerModel {
            events[event.model]!.removeFirst()
            evictions.events = evictions.events.addingSaturated(1)
        }
        evictModelsAndSessions()
    }

    /// Forgets the least recently recorded models and sessions beyond the bounds.
    private mutating func evictModelsAndSessions() {
        while models.count > bounds.models, let oldest = models.leastRecent {
            models.remove(oldest)
            events[oldest] = nil
            limits[oldest] = nil
            evictions.models = evictions.models.addingSaturated(1)
        }
        while sessions.count > bounds.sessions, let oldest = sessions.leastRecent {
            sessions.remove(oldest)
            evictions.sessions = evictions.sessions.addingSaturated(1)
        }
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
        for (model, list) in events where sessions.contains(session) {
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
    /// Events keep their session only while its usage is kept.
    public func exportSummary(now: WallTime) -> TelemetrySummary {
        let cutoff = self.cutoff(now)
        let kept = events.keys.sorted().flatMap { key in
            events[key]!.filter { $0.completedAt > cutoff }.map { event in
                var event = event
                if let session = event.sessionID, !sessions.contains(session) { event.sessionID = nil }
                return event
            }
        }
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
        // Oldest first, so that the bounds keep the most recent, as if recorded live.
        let restoring = summary.events.filter { $0.completedAt > cutoff && $0.completedAt <= now }
            .sorted { $0.completedAt < $1.completedAt }
        for event in restoring {
            var event = event
            event.model = Self.modelKey(event.model)
            insert(event)
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
            models.touch(key)
            limits[key] = max(expiry, limits[key] ?? expiry)
        }
        evictModelsAndSessions()
        for (model, expiry) in limits.sorted(by: { $0.key < $1.key }) where now < expiry {
            restored.append(Flag(model: model, expiresAt: expiry))
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
