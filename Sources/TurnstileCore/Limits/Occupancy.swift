/// How much of every limit is in use: the counters the admission check reads and every grant
/// and release writes. Kept as counters (not recounted) so a check is a few dictionary reads;
/// `Broker.assertInvariants` recounts them from the leases to prove they never drift.
struct Occupancy: Sendable, Equatable {
    /// Use of one project.
    struct ProjectUse: Sendable, Equatable {
        var total = 0
        var mention = 0
    }

    /// Permits held in all.
    var global = 0
    /// Permits held per mode, indexed by `Mode.index`.
    var modes = [0, 0, 0, 0]
    /// Permits held per project (entries vanish at zero).
    var projects: [ExactName: ProjectUse] = [:]
    /// Permits held per model pool (entries vanish at zero).
    var pools: [ModelKey: Int] = [:]
    /// Workspace locks: normalised path → fence of the lease holding it (parked or not). Paths
    /// name directories, which the file system tells apart by their bytes (NFC ≠ NFD).
    var workspaces: [ExactName: UInt64] = [:]
    /// Units held per named pool (entries vanish at zero).
    var namedPools: [ExactName: Int] = [:]
    /// Limits of the ad-hoc pools in use: set by the first holder's `pool_limits`, forgotten
    /// with the pool's last unit (protocol/PROTOCOL.md §8.2).
    var adHocLimits: [ExactName: Int] = [:]

    /// Counts a lease's capacity (global, mode, project, model).
    mutating func take(_ request: AdmissionRequest, model: ModelKey?) {
        global += 1
        modes[request.mode.index] += 1
        let project = ExactName(request.project)
        projects[project, default: ProjectUse()].total += 1
        if request.mode == .mention { projects[project]!.mention += 1 }
        if let model { pools[model, default: 0] += 1 }
        guard request.namesPools else { return }
        for pool in request.pools {
            let name = ExactName(pool)
            namedPools[name, default: 0] += 1
            if adHocLimits[name] == nil, let limit = request.poolLimits[pool] { adHocLimits[name] = limit }
        }
    }

    /// Gives a lease's capacity back.
    mutating func give(_ request: AdmissionRequest, model: ModelKey?) {
        precondition(global > 0 && modes[request.mode.index] > 0, "occupancy underflow")
        global -= 1
        modes[request.mode.index] -= 1
        let project = ExactName(request.project)
        var use = projects[project]!
        use.total -= 1
        if request.mode == .mention { use.mention -= 1 }
        projects[project] = use.total == 0 && use.mention == 0 ? nil : use
        if let model {
            let held = pools[model]! - 1
            pools[model] = held == 0 ? nil : held
        }
        guard request.namesPools else { return }
        for pool in request.pools {
            let name = ExactName(pool)
            let held = namedPools[name]! - 1
            namedPools[name] = held == 0 ? nil : held
            if held == 0 { adHocLimits[name] = nil }
        }
    }

    /// Permits held in a mode.
    func inUse(_ mode: Mode) -> Int { modes[mode.index] }
}
