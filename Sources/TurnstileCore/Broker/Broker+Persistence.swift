/// What the broker saves in the state directory (protocol/PROTOCOL.md §13): live leases, the fence
/// high-water mark, circuit-breaker counts, throttles in force, and the telemetry summary.
public struct BrokerSnapshot: Sendable, Equatable, Codable {
    /// Format version of this structure.
    public var version = 1
    /// The highest fence issued.
    public var fenceHighWater: UInt64
    /// Live leases.
    public var leases: [LeaseRecord]
    /// Circuit-breaker state by project.
    public var breaker: [String: CircuitBreaker.ProjectState]
    /// Throttles in force, with their wall-clock end.
    public var throttles: [ThrottleRecord]
    /// Telemetry events in the window and flags in force.
    public var telemetry: TelemetrySummary?

    /// A saved throttle.
    public struct ThrottleRecord: Sendable, Equatable, Codable {
        public var tenant: String
        public var provider: String
        public var until: WallTime

        public init(tenant: String, provider: String, until: WallTime) {
            self.tenant = tenant
            self.provider = provider
            self.until = until
        }
    }

    public init(fenceHighWater: UInt64, leases: [LeaseRecord], breaker: [String: CircuitBreaker.ProjectState],
                throttles: [ThrottleRecord], telemetry: TelemetrySummary?) {
        self.fenceHighWater = fenceHighWater
        self.leases = leases
        self.breaker = breaker
        self.throttles = throttles
        self.telemetry = telemetry
    }

    enum CodingKeys: String, CodingKey {
        case version, leases, breaker, throttles, telemetry
        case fenceHighWater = "fence_high_water"
    }
}

extension Broker {
    /// The state to save now.
    /// - Parameters:
    ///   - now: the monotonic now, to turn throttle ends into wall times.
    ///   - wall: the wall-clock now.
    public func snapshot(now: Instant, wall: WallTime) -> BrokerSnapshot {
        BrokerSnapshot(
            fenceHighWater: fenceHighWater,
            leases: (Array(leases.values) + Array(draining.values)).sorted { $0.fence < $1.fence }.map(LeaseRecord.init),
            breaker: breaker.exportState(),
            throttles: throttles.active(now: now).map {
                .init(tenant: $0.key.tenant, provider: $0.key.provider,
                      until: wall.adding(milliseconds: Int64(clamping: $0.remainingMilliseconds)))
            },
            telemetry: telemetry.exportSummary(now: wall))
    }

    /// Restores saved state into a fresh broker. Each lease gets the restart time plus its
    /// ttl as its deadline and comes back unbound (its holder re-`attach`es it); leases are
    /// restored even past a limit lowered meanwhile, and nothing new is granted until use is
    /// back under it. Fences continue above both the saved high-water mark and `fenceFloor`
    /// (the durable fence reservation, which may be ahead of the snapshot after a crash).
    /// - Returns: the saved leases that could not be restored (bad token, duplicate fence or
    ///   token, or a workspace already locked), for the daemon to log.
    public mutating func restore(_ snapshot: BrokerSnapshot, fenceFloor: UInt64 = 0, now: Instant,
                                 wall: WallTime) -> Transition<[LeaseRecord]> {
        let reply = decideRestore(snapshot, fenceFloor: fenceFloor, now: now, wall: wall)
        return Transition(reply: reply, effects: takeEffects())
    }

    /// `restore`'s decision; its effects stay in the outbox.
    @discardableResult
    mutating func decideRestore(_ snapshot: BrokerSnapshot, fenceFloor: UInt64 = 0, now: Instant,
                                 wall: WallTime) -> [LeaseRecord] {
        var rejected: [LeaseRecord] = []
        for record in snapshot.leases {
            guard let token = LeaseToken(hex: record.token), tokens[token] == nil, leases[record.fence] == nil,
                  draining[record.fence] == nil, record.draining == nil || record.pgid != nil,
                  // The daemon signals the group as `kill(-pgid, …)`: 1 would be every process
                  // it may signal, 0 its own group, a negative value a single pid.
                  record.pgid.map({ $0 > 1 }) ?? true,
                  record.request.workspace.map({ occupancy.workspaces[ExactName($0)] == nil }) ?? true,
                  AcquireRequest.ttlRange.contains(record.ttlMilliseconds),
                  // A shared unit was held on the previous run's host lease, which no one renews
                  // now: its holder stops at its `valid_until_ms`, and the unit is not this run's.
                  // A parked lease holds none; a draining one is restored so that its group is
                  // stopped (at once: `drainingGroupsOfSharedUnits`).
                  !(claimsShared && !record.parked && record.draining == nil && !sharedUnits(record.request, model: record.model).isEmpty)
            else {
                rejected.append(record)
                continue
            }
            let lease = Lease(token: token, fence: record.fence, request: record.request, model: record.model,
                              route: record.route, holder: record.holder, pid: record.pid, pgid: record.pgid,
                              ttlMilliseconds: record.ttlMilliseconds, grantedAt: now, lastHeartbeatAt: now,
                              deadline: now.adding(milliseconds: record.ttlMilliseconds), client: nil, bound: false,
                              parked: record.parked, waitedMilliseconds: 0)
            if let cause = record.draining {
                restoreDraining(lease, cause: cause, now: now)
            } else {
                insert(lease)
            }
        }
        adoptRestoredPools()
        fenceHighWater = max(fenceHighWater, snapshot.fenceHighWater, fenceFloor,
                             leases.keys.max() ?? 0, draining.keys.max() ?? 0)
        breaker.importState(snapshot.breaker)
        // Wall times come from a file: differences are checked, never trapped on.
        for throttle in snapshot.throttles where throttle.until > wall {
            let remaining = Self.millisecondsLeft(until: throttle.until, from: wall)
            throttles.record(.init(tenant: throttle.tenant, provider: throttle.provider),
                             retryAfterMilliseconds: remaining, now: now)
        }
        if let summary = snapshot.telemetry {
            for flag in telemetry.importSummary(summary, now: wall) {
                let remaining = Self.millisecondsLeft(until: flag.expiresAt, from: wall)
                modelFlags[flag.model] = now.adding(milliseconds: remaining)
            }
        }
        return rejected
    }

    /// Puts back a lease that was draining when saved: it holds its slot, with no token or
    /// bindings, until the daemon finds its group gone.
    private mutating func restoreDraining(_ lease: Lease, cause: LeaseEndCause, now: Instant) {
        var lease = lease
        lease.drain = Lease.Drain(cause: cause == .drained ? .released : cause, since: now)
        lease.pid = nil
        if lease.holdsCapacity { occupancy.take(lease.request, model: lease.model) }
        if let workspace = lease.request.workspace { occupancy.workspaces[ExactName(workspace)] = lease.fence }
        draining[lease.fence] = lease
    }

    /// Milliseconds from `wall` to `end`: 0 if `end` has passed, `UInt64.max` if the
    /// difference does not fit (a damaged file).
    static func millisecondsLeft(until end: WallTime, from wall: WallTime) -> UInt64 {
        let (difference, overflow) = end.unixMilliseconds.subtractingReportingOverflow(wall.unixMilliseconds)
        if overflow { return end > wall ? UInt64.max : 0 }
        return difference > 0 ? UInt64(difference) : 0
    }
}
