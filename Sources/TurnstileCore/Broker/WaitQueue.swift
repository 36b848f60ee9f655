/// A request that could not be granted at once and waits for capacity.
struct Waiter: Sendable {
    /// What to do on a grant.
    enum Kind: Sendable, Equatable {
        /// A new lease with these properties.
        case acquire(ttlMilliseconds: UInt64, detach: Bool, pid: Int32?, pgid: Int32?, holder: String?)
        /// Give capacity back to a parked lease.
        case unpark(fence: UInt64)
    }

    /// Arrival serial: FIFO order everywhere is ascending `id`.
    let id: UInt64
    let ticket: Ticket
    var request: AdmissionRequest
    /// The model candidates, recomputed on reload.
    var candidates: [ModelCandidate]
    let kind: Kind
    let enqueuedAt: Instant
    let deadline: Instant

    /// What its admission depends on besides its project and mode.
    var demand: Demand {
        var owner: UInt64?
        if case .unpark(let fence) = kind { owner = fence }
        return Demand(tenant: ExactName(request.tenant), providers: request.providers.map(ExactName.init),
                      workspace: request.workspace.map(ExactName.init), pools: request.pools.map(ExactName.init),
                      candidates: candidates, priority: request.priority, owner: owner)
    }
}

/// Everything the admission check reads from a waiter besides its project and mode (which the
/// queue's lanes and project queues already separate), plus its base priority. Two waiters of
/// one project and mode with equal demands are admissible together or not at all, and the
/// older one always goes first; so dispatch looks at the oldest of each group only, and a
/// thousand waiters on one full model cost it one check, not a thousand.
struct Demand: Hashable, Sendable {
    var tenant: ExactName
    var providers: [ExactName]
    var workspace: ExactName?
    var pools: [ExactName]
    var candidates: [ModelCandidate]
    /// Kept apart so that a group's oldest waiter is also its highest under aging.
    var priority: Int
    /// The fence of a waiting unpark, whose own workspace lock does not block it.
    var owner: UInt64?
}

/// The waiters, held so that each fairness policy can walk them cheaply: per mode a lane, per
/// lane the projects in order of first arrival, per project its waiters grouped by `Demand`,
/// each group a FIFO of waiter ids. Round robin walks lanes and projects with cursors
/// (protocol/PROTOCOL.md); priority and proportional read the same structure in their own order.
struct WaitQueue: Sendable {
    /// Waiters of one project and mode with equal demands, oldest first.
    struct Group: Sendable {
        /// Names the group for the span of one dispatch (see `Broker.dispatch`).
        let serial: UInt64
        var ids: [UInt64]
    }

    /// The waiters of one mode.
    struct Lane: Sendable {
        /// Projects with waiters, in order of first arrival.
        var projects: [ExactName] = []
        /// Each project's waiters, grouped by demand.
        var queues: [ExactName: [Demand: Group]] = [:]
        /// Index into `projects` of the next project the round-robin cursor offers.
        var cursor = 0
    }

    private(set) var waiters: [UInt64: Waiter] = [:]
    private var byTicket: [Ticket: UInt64] = [:]
    private var byClient: [ClientID: Set<UInt64>] = [:]
    private var byUnparkFence: [UInt64: UInt64] = [:]
    /// One lane per mode, indexed by `Mode.index`.
    var lanes = [Lane](repeating: Lane(), count: Mode.allCases.count)
    /// Index into `Mode.rotation` of the mode the round-robin cursor offers next.
    var modeCursor = 0
    /// Wait deadlines (lower bounds; a popped id may be gone).
    var deadlines = DeadlineHeap()
    private var nextID: UInt64 = 1
    private var nextGroupSerial: UInt64 = 1

    var count: Int { waiters.count }
    var isEmpty: Bool { waiters.isEmpty }

    /// Adds a waiter at the back of its project's FIFO.
    mutating func enqueue(ticket: Ticket, request: AdmissionRequest, candidates: [ModelCandidate],
                          kind: Waiter.Kind, now: Instant, waitMilliseconds: UInt64) -> Waiter {
        enqueue(ticket: ticket, request: request, candidates: candidates, kind: kind, since: now,
                deadline: now.adding(milliseconds: waitMilliseconds))
    }

    /// Adds a waiter at the back of its project's FIFO, with the arrival time and wait
    /// deadline it came with (a request whose claim did not end in a grant).
    mutating func enqueue(ticket: Ticket, request: AdmissionRequest, candidates: [ModelCandidate],
                          kind: Waiter.Kind, since: Instant, deadline: Instant) -> Waiter {
        let waiter = Waiter(id: nextID, ticket: ticket, request: request, candidates: candidates, kind: kind,
                            enqueuedAt: since, deadline: deadline)
        nextID += 1
        waiters[waiter.id] = waiter
        byTicket[ticket] = waiter.id
        byClient[ticket.client, default: []].insert(waiter.id)
        if case .unpark(let fence) = kind { byUnparkFence[fence] = waiter.id }
        let laneIndex = request.mode.index
        let project = ExactName(request.project)
        if lanes[laneIndex].queues[project] == nil { lanes[laneIndex].projects.append(project) }
        appendToGroup(waiter)
        deadlines.push(waiter.deadline, waiter.id)
        return waiter
    }

    /// Puts a waiter at the back of its demand's group, creating the group if needed.
    private mutating func appendToGroup(_ waiter: Waiter) {
        let demand = waiter.demand
        let laneIndex = waiter.request.mode.index
        let project = ExactName(waiter.request.project)
        if lanes[laneIndex].queues[project, default: [:]][demand] == nil {
            lanes[laneIndex].queues[project, default: [:]][demand] = Group(serial: nextGroupSerial, ids: [])
            nextGroupSerial += 1
        }
        lanes[laneIndex].queues[project]![demand]!.ids.append(waiter.id)
    }

    /// Removes a waiter wherever it is.
    @discardableResult
    mutating func remove(_ id: UInt64) -> Waiter? {
        guard let waiter = waiters.removeValue(forKey: id) else { return nil }
        byTicket[waiter.ticket] = nil
        byClient[waiter.ticket.client]?.remove(id)
        if byClient[waiter.ticket.client]?.isEmpty == true { byClient[waiter.ticket.client] = nil }
        if case .unpark(let fence) = waiter.kind { byUnparkFence[fence] = nil }
        let laneIndex = waiter.request.mode.index
        let project = ExactName(waiter.request.project)
        let demand = waiter.demand
        var group = lanes[laneIndex].queues[project]![demand]!
        group.ids.remove(at: group.ids.firstIndex(of: id)!)
        lanes[laneIndex].queues[project]![demand] = group.ids.isEmpty ? nil : group
        if lanes[laneIndex].queues[project]!.isEmpty {
            lanes[laneIndex].queues[project] = nil
            let position = lanes[laneIndex].projects.firstIndex(of: project)!
            lanes[laneIndex].projects.remove(at: position)
            if position < lanes[laneIndex].cursor { lanes[laneIndex].cursor -= 1 }
            if lanes[laneIndex].cursor >= lanes[laneIndex].projects.count { lanes[laneIndex].cursor = 0 }
        }
        return waiter
    }

    /// The oldest waiter of each group of a project, with the group's serial.
    func heads(lane laneIndex: Int, project: ExactName) -> [(serial: UInt64, id: UInt64)] {
        lanes[laneIndex].queues[project]?.values.map { ($0.serial, $0.ids[0]) } ?? []
    }

    /// The waiter answering a ticket.
    func id(of ticket: Ticket) -> UInt64? { byTicket[ticket] }

    /// The waiters of a connection.
    func ids(of client: ClientID) -> [UInt64] { byClient[client].map { $0.sorted() } ?? [] }

    /// The waiting unpark of a lease.
    func unparkWaiter(of fence: UInt64) -> UInt64? { byUnparkFence[fence] }

    /// Pending requests of one connection.
    func pendingCount(of client: ClientID) -> Int { byClient[client]?.count ?? 0 }

    /// Every waiter in arrival order.
    func inArrivalOrder() -> [Waiter] { waiters.values.sorted { $0.id < $1.id } }

    /// Replaces the candidates of every waiter (after a reload), lets `compute` update its
    /// request too (a pool's limit recorded), and regroups them by their new demands, keeping
    /// each group oldest first.
    mutating func recomputeCandidates(_ compute: (inout AdmissionRequest) -> [ModelCandidate]) {
        for laneIndex in lanes.indices {
            for project in lanes[laneIndex].projects { lanes[laneIndex].queues[project] = [:] }
        }
        for waiter in inArrivalOrder() {
            var request = waiter.request
            waiters[waiter.id]!.candidates = compute(&request)
            waiters[waiter.id]!.request = request
            appendToGroup(waiters[waiter.id]!)
        }
    }
}
