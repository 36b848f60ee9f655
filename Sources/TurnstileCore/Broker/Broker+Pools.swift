/// Named counting semaphores (protocol/PROTOCOL.md §8.2, README "Concepts"): a configured pool's
/// limit is its `[[pools]]` entry's; an ad-hoc pool's is set by its first holder's `pool_limits`
/// and forgotten with its last unit, as `sem --id build -j 3` does.
///
/// Every waiter and lease carries the limit of each ad-hoc pool it names (`poolLimits`,
/// filled in from the limit in force): so a waiter's admission never depends on which other
/// acquire happened to define the pool (two waiters naming the same pools are admissible
/// together or not at all, as the queue's demand groups assume), and a restart re-creates each
/// ad-hoc pool at the limit it had.
extension Broker {
    /// `pool`: the first of the request's pools, in its order, with no unit left.
    func poolBlock(_ request: AdmissionRequest) -> Refusal? {
        if let full = fullPool(request) {
            return Refusal(.pool, limit: full.limit, inUse: full.held, detail: "pool \(full.name) is full")
        }
        guard let cluster, !cluster.exhausted.isEmpty else { return nil }
        for pool in request.pools {
            let name = ExactName(pool)
            if let limit = poolCaps[name], cluster.exhausted.contains(.pool(name)) {
                return Refusal(.pool, limit: limit, inUse: limit, detail: "pool \(pool) is full across the cluster")
            }
        }
        return nil
    }

    /// The first of the request's pools with no unit left, with its limit and units held.
    func fullPool(_ request: AdmissionRequest) -> (name: String, limit: Int, held: Int)? {
        for pool in request.pools {
            let name = ExactName(pool)
            let limit = poolLimit(name, asked: request.poolLimits[pool])
            let held = occupancy.namedPools[name] ?? 0
            if held >= limit { return (pool, limit, held) }
        }
        return nil
    }

    /// A pool's limit: configured, else the ad-hoc limit in force, else the one asked for
    /// (0, so full, for a pool with no limit anywhere: only a restored lease can hold one).
    func poolLimit(_ name: ExactName, asked: Int?) -> Int {
        poolCaps[name] ?? occupancy.adHocLimits[name] ?? asked ?? 0
    }

    /// Why a request's pools cannot be taken at all (protocol/PROTOCOL.md §8.2): one with no limit
    /// anywhere, or a `pool_limits` entry that disagrees with the limit in force.
    func poolProblem(_ request: AdmissionRequest) -> LeaseError? {
        for pool in request.pools {
            let name = ExactName(pool)
            let asked = request.poolLimits[pool]
            if let configured = poolCaps[name] {
                if let asked, asked != configured {
                    return .badRequest(field: "pool_limits", message: "pool \(pool) is configured with limit \(configured), not \(asked)")
                }
            } else if let inForce = occupancy.adHocLimits[name] {
                if let asked, asked != inForce {
                    return .badRequest(field: "pool_limits",
                                       message: "pool \(pool) is held with limit \(inForce); ask with that limit or none")
                }
            } else if asked == nil {
                return .badRequest(field: "pools",
                                   message: "pool \(pool) has no limit: name it in [[pools]] or give pool_limits (\"\(pool)\": N)")
            }
        }
        return nil
    }

    /// The request with its pool limits as they stand now: a configured pool's entry dropped
    /// (the config's limit applies), an ad-hoc pool in use given the limit in force.
    func withPoolLimitsInForce(_ request: AdmissionRequest) -> AdmissionRequest {
        guard !request.pools.isEmpty else { return request }
        var request = request
        for pool in request.pools {
            let name = ExactName(pool)
            if poolCaps[name] != nil {
                request.poolLimits[pool] = nil
            } else if let inForce = occupancy.adHocLimits[name] {
                request.poolLimits[pool] = inForce
            }
        }
        return request
    }

    /// After a reload (protocol/PROTOCOL.md §8.2): a pool the new config no longer names keeps
    /// its last configured limit, as an ad-hoc pool, for the leases and waiters that name it
    /// (a live lease is never taken back; a waiter was accepted under that limit); a pool it
    /// now names takes the config's limit, and an ad-hoc limit in force for it is dropped.
    /// Live leases given a limit are journaled (`leaseChanged`); the caller records it in the
    /// waiters' requests (`recordLimits`) as it regroups them.
    /// - Returns: the limits of the pools the new config dropped.
    mutating func reconcilePools(configuredBefore oldCaps: [ExactName: Int]) -> [ExactName: Int] {
        var dropped: [ExactName: Int] = [:]
        for (name, limit) in oldCaps where poolCaps[name] == nil { dropped[name] = limit }
        for name in poolCaps.keys { occupancy.adHocLimits[name] = nil }
        guard !dropped.isEmpty else { return [:] }
        for (name, limit) in dropped where occupancy.namedPools[name] != nil { occupancy.adHocLimits[name] = limit }
        for fence in leases.keys.sorted() where Self.recordLimits(dropped, in: &leases[fence]!.request) {
            effects.append(.leaseChanged(leases[fence]!))
        }
        for fence in draining.keys { _ = Self.recordLimits(dropped, in: &draining[fence]!.request) }
        return dropped
    }

    /// Writes the given pools' limits into a request's `poolLimits` where it names them.
    /// - Returns: whether anything changed.
    static func recordLimits(_ limits: [ExactName: Int], in request: inout AdmissionRequest) -> Bool {
        var changed = false
        for pool in request.pools {
            if let limit = limits[ExactName(pool)], request.poolLimits[pool] != limit {
                request.poolLimits[pool] = limit
                changed = true
            }
        }
        return changed
    }

    /// After a restore: a held pool with no limit anywhere (configured before the restart, not
    /// now) becomes ad hoc at the units held, so nothing more is let out until one is given
    /// back; an ad-hoc limit a restored lease set for a pool the config now names is dropped.
    mutating func adoptRestoredPools() {
        for name in poolCaps.keys { occupancy.adHocLimits[name] = nil }
        for (name, held) in occupancy.namedPools where poolCaps[name] == nil && occupancy.adHocLimits[name] == nil {
            occupancy.adHocLimits[name] = held
        }
    }

    /// Configured pools in config order, then ad-hoc pools in use by name; each with the
    /// waiters whose reason is that pool.
    func poolInfos(_ waiting: [BrokerStatus.WaiterInfo]) -> [BrokerStatus.PoolUse] {
        var waitingFor: [ExactName: Int] = [:]
        for waiter in waiting {
            if let pool = waiter.pool { waitingFor[ExactName(pool), default: 0] += 1 }
        }
        var infos = config.pools.map {
            let name = ExactName($0.name)
            return BrokerStatus.PoolUse(name: $0.name, limit: $0.limit, inUse: occupancy.namedPools[name] ?? 0,
                                        waiting: waitingFor[name] ?? 0, adHoc: false)
        }
        for (name, limit) in occupancy.adHocLimits.sorted(by: { $0.key < $1.key }) where poolCaps[name] == nil {
            infos.append(BrokerStatus.PoolUse(name: name.text, limit: limit, inUse: occupancy.namedPools[name] ?? 0,
                                              waiting: waitingFor[name] ?? 0, adHoc: true))
        }
        return infos
    }

    /// Pool problems for `invariantViolations`: every held pool has a limit, an ad-hoc limit
    /// belongs to a held pool the config does not name, and every waiter has a limit for each
    /// pool it names (its own or the config's).
    func poolViolations(recounted held: [ExactName: Int]) -> [String] {
        var problems: [String] = []
        for name in held.keys where poolCaps[name] == nil && occupancy.adHocLimits[name] == nil {
            problems.append("pool \(name) is held with no limit")
        }
        for name in occupancy.adHocLimits.keys where held[name] == nil || poolCaps[name] != nil {
            problems.append("ad-hoc limit of pool \(name) outlived its last unit, or shadows the config")
        }
        for waiter in queue.waiters.values {
            for pool in waiter.request.pools where poolCaps[ExactName(pool)] == nil && waiter.request.poolLimits[pool] == nil {
                problems.append("waiter \(waiter.ticket) names pool \(pool) with no limit")
            }
        }
        return problems
    }
}
