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
    /// Workspace locks: normalised path → fence of the lease holding it (parked or not).
    var workspaces: [String: UInt64] = [:]

    /// Counts a lease's capacity (global, mode, project, model).
    mutating func take(_ request: AdmissionRequest, model: ModelKey?) {
        global += 1
        modes[request.mode.index] += 1
        let project = ExactName(request.project)
        projects[project, default: ProjectUse()].total += 1
        if request.mode == .mention { projects[project]!.mention += 1 }
        if let model { pools[model, default: 0] += 1 }
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
    }

    /// Permits held in a mode.
    func inUse(_ mode: Mode) -> Int { modes[mode.index] }
}
