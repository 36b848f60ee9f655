@testable import TurnstileCore

/// An independent model of what the broker must never do, fed only by the broker's effects.
/// It keeps its own counts of every dimension and, at each grant, checks the grant against
/// the limits in force at that moment: nothing over a limit, nothing for a paused project or
/// through a throttled provider or flagged model, no workspace held twice. When model
/// capacity is shared across hosts, a claim is the admission (protocol/CLUSTER.md §3): it is
/// checked and counted when it is made, and the grant its success brings is not checked again.
struct SimulationOracle {
    struct Held: Equatable {
        var request: AdmissionRequest
        var model: ModelKey?
        var parked: Bool
    }

    var held: [UInt64: Held] = [:]
    /// Reservations of claims in flight, by fence.
    var claiming: [UInt64: Held] = [:]
    /// Claims answered since the last `apply`: the grants they bring were checked as claims.
    var resolvedClaims: Set<UInt64> = []
    var paused: Set<String> = []
    var throttles: [ThrottleTable.Key: Instant] = [:]
    var flags: [String: Instant] = [:]
    var problems: [String] = []

    /// The simulated cluster answered a claim: its reservation becomes a lease or is given back.
    mutating func claimResolved(_ fence: UInt64) {
        if claiming.removeValue(forKey: fence) != nil { resolvedClaims.insert(fence) }
    }

    /// Applies one step's effects in order, checking each grant and claim.
    /// - Parameter claims: what a pending claim reserves (its effect names only fence and units).
    mutating func apply(_ effects: [Effect], config: TurnstileConfig, now: Instant,
                        claims: (UInt64) -> (request: AdmissionRequest, model: ModelKey?)? = { _ in nil }) {
        defer { resolvedClaims.removeAll() }
        for effect in effects {
            switch effect {
            case .claim(_, let claim):
                guard let (request, model) = claims(claim.fence) else {
                    problems.append("claim \(claim.fence) is not pending")
                    continue
                }
                if model != claim.claimedModel && claim.claimedModel != nil { problems.append("claim \(claim.fence) claims another model") }
                check(request, model: model, fence: claim.fence, config: config, now: now)
                claiming[claim.fence] = Held(request: request, model: model, parked: false)
            case .leaseGranted(let lease):
                if !resolvedClaims.contains(lease.fence) {
                    check(lease.request, model: lease.model, fence: lease.fence, config: config, now: now)
                }
                held[lease.fence] = Held(request: lease.request, model: lease.model, parked: false)
            case .leaseChanged(let lease):
                guard let before = held[lease.fence] else {
                    problems.append("change of unknown lease \(lease.fence)")
                    continue
                }
                if before.parked && !lease.parked && !resolvedClaims.contains(lease.fence) {
                    held[lease.fence]!.parked = true
                    check(lease.request, model: lease.model, fence: lease.fence, config: config, now: now)
                }
                held[lease.fence] = Held(request: lease.request, model: lease.model, parked: lease.parked)
            case .leaseEnded(let lease, _):
                if held.removeValue(forKey: lease.fence) == nil { problems.append("end of unknown lease \(lease.fence)") }
                // An unpark still claiming for it holds capacity until its outcome, not the
                // workspace: that was the lease's.
                claiming[lease.fence]?.request.workspace = nil
            case .paused(let project): paused.insert(project)
            case .resumed(let project): paused.remove(project)
            case .throttled(let provider, let tenant, let ms):
                throttles[.init(tenant: tenant, provider: provider)] = now.adding(milliseconds: ms)
            default: break
            }
        }
    }

    /// What is in use, counted from the oracle's own leases and claims.
    func count(_ include: (Held) -> Bool) -> Int {
        held.values.filter { !$0.parked && include($0) }.count + claiming.values.filter(include).count
    }

    private mutating func check(_ request: AdmissionRequest, model: ModelKey?, fence: UInt64,
                                config: TurnstileConfig, now: Instant) {
        let limits = config.limits
        func fail(_ what: String) { problems.append("grant of fence \(fence) broke \(what)") }
        if count({ _ in true }) >= limits.global { fail("global") }
        if let quota = limits.quota(of: request.mode), count({ $0.request.mode == request.mode }) >= quota { fail("mode") }
        if let caps = config.projects.last(where: { $0.name == request.project }) {
            if let max = caps.max, count({ $0.request.project == request.project }) >= max { fail("project") }
            if request.mode == .mention, let max = caps.maxMention,
               count({ $0.request.project == request.project && $0.request.mode == .mention }) >= max { fail("mention") }
        }
        if limits.fairness == .proportional, let quota = limits.quota(of: request.mode), limits.time + limits.issue > 0 {
            let share = limits.global * quota / (limits.time + limits.issue)
            if share > 0 && count({ $0.request.mode == request.mode }) >= share { fail("proportional") }
        }
        if let model {
            let table = ModelTable(providers: config.providers, models: config.models)
            if count({ $0.model == model }) >= table.limit(of: model) { fail("model \(model)") }
            if let end = throttles[.init(tenant: request.tenant, provider: model.provider)], end > now { fail("model throttle") }
            for key in [model.description, model.model] where (flags[key] ?? now) > now { fail("flag on \(key)") }
        } else if request.model != nil {
            fail("a model request granted without a model")
        }
        for provider in request.providers {
            if let end = throttles[.init(tenant: request.tenant, provider: provider)], end > now { fail("throttle \(provider)") }
        }
        if request.project != Names.globalProject && paused.contains(request.project) { fail("pause") }
        if let workspace = request.workspace,
           held.contains(where: { $0.key != fence && $0.value.request.workspace == workspace })
            || claiming.contains(where: { $0.key != fence && $0.value.request.workspace == workspace }) {
            fail("workspace lock")
        }
    }
}
