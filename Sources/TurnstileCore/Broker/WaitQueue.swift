/// A request that could not be granted at once and waits for capacity.
struct Waiter: Sendable {
    /// What to do on a grant.
    enum Kind: Sendable, Equatable {
        /// A new lease with these properties.
        case acquire(ttlMilliseconds: UInt64, detach: Bool, pid: Int32?, holder: String?)
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
}

/// The waiters, held so that each fairness policy can walk them cheaply: per mode a lane, per
/// lane the projects in order of first arrival, per project a FIFO of waiter ids. Round robin
/// walks lanes and projects with cursors (SPEC §4a); priority and proportional read the same
/// structure in their own order.
struct WaitQueue: Sendable {
    /// The waiters of one mode.
    struct Lane: Sendable {
        /// Projects with waiters, in order of first arrival.
        var projects: [String] = []
        /// Each project's FIFO of waiter ids.
        var queues: [String: [UInt64]] = [:]
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

    var count: Int { waiters.count }
    var isEmpty: Bool { waiters.isEmpty }

    /// Adds a waiter at the back of its project's FIFO.
    mutating func enqueue(ticket: Ticket, request: AdmissionRequest, candidates: [ModelCandidate],
                          kind: Waiter.Kind, now: Instant, waitMilliseconds: UInt64) -> Waiter {
        let waiter = Waiter(id: nextID, ticket: ticket, request: request, candidates: candidates, kind: kind,
                            enqueuedAt: now, deadline: now.adding(milliseconds: waitMilliseconds))
        nextID += 1
        waiters[waiter.id] = waiter
        byTicket[ticket] = waiter.id
        byClient[ticket.client, default: []].insert(waiter.id)
        if case .unpark(let fence) = kind { byUnparkFence[fence] = waiter.id }
        let laneIndex = request.mode.index
        if lanes[laneIndex].queues[request.project] == nil { lanes[laneIndex].projects.append(request.project) }
        lanes[laneIndex].queues[request.project, default: []].append(waiter.id)
        deadlines.push(waiter.deadline, waiter.id)
        return waiter
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
        let project = waiter.request.project
        var queue = lanes[laneIndex].queues[project]!
        queue.remove(at: queue.firstIndex(of: id)!)
        if queue.isEmpty {
            lanes[laneIndex].queues[project] = nil
            let position = lanes[laneIndex].projects.firstIndex(of: project)!
            lanes[laneIndex].projects.remove(at: position)
            if position < lanes[laneIndex].cursor { lanes[laneIndex].cursor -= 1 }
            if lanes[laneIndex].cursor >= lanes[laneIndex].projects.count { lanes[laneIndex].cursor = 0 }
        } else {
            lanes[laneIndex].queues[project] = queue
        }
        return waiter
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

    /// Replaces the candidates of every waiter (after a reload).
    mutating func recomputeCandidates(_ compute: (AdmissionRequest) -> [ModelCandidate]) {
        for id in Array(waiters.keys) { waiters[id]!.candidates = compute(waiters[id]!.request) }
    }
}
