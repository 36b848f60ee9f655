@testable import TurnstileCore

/// One seeded simulation: a broker, a random operation source, and the oracle.
struct SimulationRun {
    var h: Harness
    var rng: SplitMix64
    var oracle = SimulationOracle()
    var waiting: [Ticket] = []
    var lastOperation = ""
    var trace: [String] = []
    var problems: [String] = []
    /// The cluster, for the seeds that share model capacity.
    var cluster: SimulatedCluster?

    static let projects = [Names.globalProject, "a", "b", "c"]
    static let pools = ["p1/x", "p1/y", "p2/x", "p2/z", "cli/w"]
    static let workspaces = ["/w1", "/w2", "/w3/"]
    static let providers = ["p1", "p2", "gh"]
    static let tenants = ["local", "t2"]

    init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var config = SimulationRun.randomConfig(&rng)
        config.cluster = Self.randomCluster(seed: seed)
        h = Harness(seed: seed &* 7919) { $0 = config }
        h.broker.assertsInvariants = false
        self.rng = rng
        guard config.cluster != nil else { return }
        cluster = SimulatedCluster()
        // Most runs start with the host lease registered; the others start joining.
        if chance(80) { _ = h.broker.decideClusterRestored(safeDeadline: h.now.adding(milliseconds: 3_000), now: h.now) }
    }

    mutating func pick<T>(_ values: [T]) -> T { values[Int(rng.next() % UInt64(values.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }
    mutating func number(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(rng.next() % UInt64(range.count))
    }

    static func randomConfig(_ rng: inout SplitMix64) -> TurnstileConfig {
        func n(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }
        var config = TurnstileConfig()
        config.limits.global = n(0...6)
        config.limits.time = n(0...3)
        config.limits.issue = n(0...3)
        config.limits.fairness = [FairnessPolicy.roundRobin, .priority, .proportional][n(0...2)]
        config.limits.priorityAgingMilliseconds = UInt64(n(0...2) * 400)
        config.projects = ["a", "b", "c"].compactMap { name in
            n(0...2) == 0 ? nil : ProjectConfig(name: name, max: n(0...1) == 0 ? nil : n(0...3),
                                                maxMention: n(0...1) == 0 ? nil : n(0...2))
        }
        config.providers = [ProviderConfig(name: "p1", models: ["x", "y"]), ProviderConfig(name: "p2", models: ["x", "z"]),
                            ProviderConfig(name: "cli", kind: .cli, models: ["w"])]
        config.models = [ModelConfig(name: "x", concurrencyLimit: n(0...2)),
                         ModelConfig(name: "p2/z", concurrencyLimit: n(1...2), tier: .standard),
                         ModelConfig(name: "y", concurrencyLimit: n(1...3), tier: [.premium, .standard, .cheap][n(0...2)])]
        config.telemetry.subscriptionLimitTTLSeconds = UInt64(n(1...3))
        return config
    }

    /// One random operation, then every check.
    mutating func step() {
        let before = h.broker.config
        if cluster != nil, chance(20) { clusterStep() } else { randomOperation() }
        let effects = h.effects()
        trace.append("\(lastOperation) → \(effects.count)")
        waiting.removeAll { !h.broker.isWaiting($0) }
        // A reload's own grants are checked against the new config; everything else against the old.
        take(effects, config: lastOperation == "reload" ? h.broker.config : before)
        problems += h.violations()
        problems += mismatchWithStatus()
    }

    /// Hands a step's effects to the cluster and the oracle, and collects what they found.
    mutating func take(_ effects: [Effect], config: TurnstileConfig) {
        cluster?.observe(effects)
        oracle.apply(effects, config: config, now: h.now, claims: claimDimensions)
        problems += oracle.problems
        if let cluster {
            problems += cluster.problems + cluster.disagreements(with: h.broker)
        }
    }

    /// One random client, process or operator operation, or time passing.
    mutating func randomOperation() {
        let roll = rng.next() % 100
        switch roll {
        case 0..<30: acquire()
        case 30..<40: onRandomLease("heartbeat") { run, token in _ = run.h.broker.decideHeartbeat(token, now: run.h.now) }
        case 40..<52: onRandomLease("release") { run, token in _ = run.h.broker.decideRelease(token, now: run.h.now) }
        case 52..<56: onRandomLease("park") { run, token in _ = run.h.broker.decidePark(token, now: run.h.now) }
        case 56..<60: onRandomLease("unpark") { run, token in
            let ticket = run.h.ticket(UInt64(run.number(1...5)))
            let wait = run.chance(50) ? 0 : UInt64(run.number(1...4000))
            if case .success(.queued) = run.h.broker.decideUnpark(token, ticket: ticket, waitMilliseconds: wait, now: run.h.now) {
                run.waiting.append(ticket)
            }
        }
        case 60..<63: onRandomLease("attach") { run, token in
            let pid: Int32? = run.chance(50) ? Int32(run.number(100...104)) : nil
            _ = run.h.broker.decideAttach(token, client: ClientID(UInt64(run.number(1...5))), pid: pid, now: run.h.now)
        }
        case 63..<66: onRandomLease("revoke") { run, token in _ = run.h.broker.decideRevoke(token, now: run.h.now) }
        case 66..<69:
            let client = ClientID(UInt64(number(1...5)))
            lastOperation = "disconnect \(client)"
            h.broker.decideDisconnect(client, now: h.now)
        case 69..<71:
            let pid = Int32(number(100...104))
            lastOperation = "exit \(pid)"
            h.broker.decideProcessExited(pid, now: h.now)
        case 71..<74:
            lastOperation = "cancel"
            if !waiting.isEmpty { _ = h.broker.decideCancel(pick(waiting), now: h.now) }
        case 74..<78: pauseOrResume()
        case 78..<81: throttle()
        case 81..<83: flag()
        case 83..<85:
            lastOperation = "reload"
            var config = Self.randomConfig(&rng)
            // The daemon refuses a reload that changes a shared limit (protocol/CLUSTER.md §2).
            if h.broker.clusterSharing?.projects == true { config.projects = h.broker.config.projects }
            h.broker.decideReload(config, now: h.now)
        case 85..<89: lateTimer()
        default:
            let ms = UInt64(number(0...1500))
            lastOperation = "advance \(ms)"
            h.advance(ms)
        }
    }

    mutating func acquire() {
        let model: String? = chance(60) ? pick(Self.pools) : nil
        let project = pick(Self.projects)
        let mode = pick(Mode.allCases)
        let wait = chance(40) ? 0 : UInt64(number(1...5000))
        let client = UInt64(number(1...5))
        lastOperation = "acquire \(project)/\(mode) \(model ?? "-") wait \(wait)"
        let ticket = h.ticket(client)
        let request = AcquireRequest(
            AdmissionRequest(project: project, mode: mode, model: model.flatMap { ModelKey(parsing: $0) },
                             fallback: chance(30) ? ModelKey.parseChain([pick(Self.pools), "bogus"]) : [],
                             providers: chance(20) ? [pick(Self.providers)] : [],
                             workspace: chance(30) ? Names.normaliseWorkspace(pick(Self.workspaces)) : nil,
                             tenant: pick(Self.tenants), priority: number(-2...3)),
            waitMilliseconds: wait, ttlMilliseconds: UInt64(number(100...3000)), detach: chance(20),
            pid: chance(25) ? Int32(number(100...104)) : nil, holder: nil)
        if case .queued = h.broker.decideAcquire(request, ticket: ticket, now: h.now) { waiting.append(ticket) }
    }

    /// The clock moves but the daemon's timer has not fired yet (it is late, or its turn of
    /// the loop comes after this input): an acquire arrives first. Throttles and flags that
    /// ended meanwhile must be lifted, and their waiters granted, before it is considered.
    mutating func lateTimer() {
        let ms = UInt64(number(0...1500))
        h.now = h.now.adding(milliseconds: ms)
        h.wall = h.wall.adding(milliseconds: Int64(ms))
        acquire()
        lastOperation = "late timer \(ms), then " + lastOperation
    }

    mutating func onRandomLease(_ name: String, _ body: (inout SimulationRun, LeaseToken) -> Void) {
        let tokens = h.broker.leases.values.map(\.token).sorted { $0.high < $1.high }
        lastOperation = name
        guard !tokens.isEmpty else { return }
        body(&self, pick(tokens))
    }

    mutating func pauseOrResume() {
        let project = pick(Self.projects)
        if chance(50) {
            lastOperation = "pause \(project)"
            _ = h.broker.decidePause(project, now: h.now)
        } else {
            lastOperation = "resume \(project)"
            _ = h.broker.decideResume(project, now: h.now)
        }
    }

    mutating func throttle() {
        let provider = pick(Self.providers)
        lastOperation = "throttle \(provider)"
        h.broker.decideThrottle(provider: provider, tenant: pick(Self.tenants), retryAfterMilliseconds: UInt64(number(0...3000)),
                          now: h.now)
    }

    mutating func flag() {
        let model = chance(50) ? pick(Self.pools) : pick(["x", "y", "z"])
        lastOperation = "flag \(model)"
        h.broker.decideRecord(CompletionEvent(model: model, completedAt: h.wall, latencyMilliseconds: 1, success: false,
                                        error: "quota exceeded"), now: h.now)
        let ttl = h.broker.config.telemetry.subscriptionLimitTTLSeconds * 1000
        oracle.flags[Telemetry.modelKey(model)] = h.now.adding(milliseconds: ttl)
    }

    /// The broker's status must agree with the oracle's own counts.
    func mismatchWithStatus() -> [String] {
        let status = h.broker.status(now: h.now)
        var problems: [String] = []
        if status.global.inUse != oracle.count({ _ in true }) { problems.append("status global in use") }
        for mode in status.modes where mode.inUse != oracle.count({ $0.request.mode == mode.mode }) {
            problems.append("status \(mode.mode) in use")
        }
        for model in status.models where model.inUse != oracle.count({ $0.model == model.model }) {
            problems.append("status \(model.model) in use")
        }
        if status.leases.count != oracle.held.count { problems.append("status lease count") }
        return problems
    }

    /// Every holder goes away (connections close, processes exit, time passes): everything
    /// must come back to zero.
    mutating func drain() {
        for client in 1...5 { h.broker.decideDisconnect(ClientID(UInt64(client)), now: h.now) }
        for pid in Int32(100)...104 { h.broker.decideProcessExited(pid, now: h.now) }
        take(h.effects(), config: h.broker.config)
        settleClaims()
        var rounds = 0
        while h.broker.leaseCount + h.broker.waiterCount > 0 || h.broker.nextDeadline() != nil, rounds < 100 {
            h.advance(1000)
            take(h.effects(), config: h.broker.config)
            rounds += 1
        }
        if let cluster, !cluster.heldHere.isEmpty || h.broker.cluster?.claims.isEmpty == false {
            problems.append("shared units or claims left after drain")
        }
        let status = h.broker.status(now: h.now)
        if status.global.inUse != 0 || status.leases.count != 0 || !status.waiting.isEmpty { problems.append("not drained") }
        if status.modes.contains(where: { $0.inUse != 0 }) || status.models.contains(where: { $0.inUse != 0 }) {
            problems.append("counts left after drain")
        }
        if !status.workspaces.isEmpty || !status.throttles.isEmpty { problems.append("locks or throttles left") }
        if status.projects.contains(where: { $0.inUse != 0 }) { problems.append("project counts left") }
        if !oracle.held.isEmpty || !oracle.claiming.isEmpty { problems.append("oracle still holds \(oracle.held.count)") }
        problems += h.violations()
    }
}
