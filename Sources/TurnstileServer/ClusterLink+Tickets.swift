import TurnstileCluster
import TurnstileCore

/// Who waits first for a shared model's units across the fleet (protocol/CLUSTER.md §4), host
/// by host. A host whose waiters for a model are held back by the fleet alone (a claim found
/// the model full; `Broker.fleetWaiterPriority`) puts a ticket, `tickets/models/<name>/<host>`
/// on its host lease, carrying the priority of the best of those waiters. The fleet's line:
/// higher priority first (priorities are 0 unless `fairness = "priority"`), then older ticket
/// (create revision). A host claims a unit of a model only if no other host's ticket comes
/// before its own (no ticket at all counts as the last): the others queue behind. A host whose
/// claim succeeds deletes its ticket, so if it still has waiters it queues again behind the
/// others of its priority: freed units go round the waiting hosts in turn, and a host whose
/// units keep turning over cannot starve the others. Waiters held back by their own host's
/// limits put no ticket and hold up no one; a dead host's tickets vanish with its lease.
/// Within a host the broker's own queue orders the waiters.
struct TicketBook {
    /// A place in the fleet's line.
    struct Place: Equatable {
        var priority: Int
        /// The ticket's create revision (`Int64.max` until a poll has shown it: the newest).
        var revision: Int64

        /// Whether this place comes before `other`: higher priority, then older.
        func precedes(_ other: Place) -> Bool {
            priority != other.priority ? priority > other.priority : revision < other.revision
        }
    }

    /// One of this host's tickets: its place, and the poll serial current when its put was
    /// acknowledged.
    struct Mine {
        var place: Place
        var acknowledgedAt: Int?
    }

    /// This host's tickets, by model name.
    private(set) var mine: [String: Mine] = [:]
    /// The first of the other hosts' tickets per model name, as last polled.
    private(set) var firstOther: [String: Place] = [:]

    /// Whether this host may claim a unit of `name` now.
    func mayClaim(_ name: String) -> Bool {
        guard let other = firstOther[name] else { return true }
        guard let mine = mine[name] else { return false }
        return mine.place.precedes(other)
    }

    mutating func put(_ name: String, priority: Int) -> Bool {
        guard mine[name] == nil else { return false }
        mine[name] = Mine(place: Place(priority: priority, revision: .max), acknowledgedAt: nil)
        return true
    }

    /// A ticket's priority changed (a better waiter came, or the best left): whether it did.
    mutating func reprioritize(_ name: String, _ priority: Int) -> Bool {
        guard let ticket = mine[name], ticket.place.priority != priority else { return false }
        mine[name]!.place.priority = priority
        return true
    }

    mutating func acknowledged(_ name: String, poll: Int) {
        mine[name]?.acknowledgedAt = poll
    }

    mutating func remove(_ name: String) -> Bool { mine.removeValue(forKey: name) != nil }

    /// A poll's tickets (`serial`: the poll's number): the others' first, and the revisions of
    /// this host's tickets put before the poll was sent.
    /// A ticket of this host's acknowledged before the poll was sent and missing from it is
    /// gone (a deletion and a put of it raced, their order on the wire not being theirs): it is
    /// forgotten, so it is put again, instead of holding this host in a queue it is not in.
    /// - Returns: the names of this host's tickets in etcd that it does not hold (the same race
    ///   the other way round): to delete, or they would hold the other hosts back.
    mutating func polled(_ tickets: [(name: String, host: String, revision: Int64, priority: Int)], host: String,
                         serial: Int) -> [String] {
        firstOther = [:]
        var seen = Set<String>()
        var stale: [String] = []
        for ticket in tickets {
            if ticket.host == host {
                seen.insert(ticket.name)
                if mine[ticket.name] == nil { stale.append(ticket.name) }
                if let acknowledged = mine[ticket.name]?.acknowledgedAt, acknowledged < serial {
                    mine[ticket.name]!.place.revision = ticket.revision
                }
            } else {
                let place = Place(priority: ticket.priority, revision: ticket.revision)
                if firstOther[ticket.name].map({ place.precedes($0) }) ?? true { firstOther[ticket.name] = place }
            }
        }
        mine = mine.filter { name, ticket in seen.contains(name) || (ticket.acknowledgedAt.map { $0 >= serial } ?? true) }
        return stale
    }

    /// The host lease expired: its tickets went with it.
    mutating func leaseExpired() { mine.removeAll() }
}

extension ClusterLink {
    /// A claim of `model` found it full, or another host waits first: this host queues, with
    /// the priority of its best waiter held back by the fleet (`priority`).
    func queueBehind(_ model: ModelKey, priority: Int) {
        let name = model.description
        guard lease != nil, tickets.put(name, priority: priority) else { return }
        putTicket(name, priority: priority)
    }

    /// Writes this host's ticket for `name` (again, for a new priority: a put keeps the key's
    /// create revision, so the ticket keeps its age).
    private func putTicket(_ name: String, priority: Int) {
        guard let lease else { return }
        client.put(layout.ticketKey(kind: "models", name: name), SlotLayout.ticketValue(priority: priority), lease: lease) { [inbox] result in
            inbox.post { link in
                if case .success = result {
                    link.tickets.acknowledged(name, poll: link.pollSerial)
                } else {
                    _ = link.tickets.remove(name)
                }
            }
        }
    }

    /// This host got a unit of `name`, or no longer waits for one: its ticket goes.
    func leaveQueue(_ name: String) {
        guard tickets.remove(name) else { return }
        client.deleteRange(.key(layout.ticketKey(kind: "models", name: name))) { _ in }
    }

    /// A unit of `model` is free: the broker hears of it if this host is first in line.
    func capacityFreed(_ model: ModelKey) {
        logger.debug("cluster: unit freed", metadata: ["model": "\(model)", "first_in_line": "\(tickets.mayClaim(model.description))"])
        guard tickets.mayClaim(model.description) else { return }
        session.sharedCapacityFreed(model: model)
    }

    /// After each poll: this host's tickets are brought in line with what its broker waits
    /// for. A model with waiters held back by the fleet alone gets a ticket if it has none (its
    /// claim may have failed while a poll was on its way), or its ticket's priority is brought
    /// up to date; a ticket of a model with no such waiter, and no claim of it pending, goes,
    /// as does a ticket of this host's in etcd that it does not hold. If this host is first in
    /// line and the book shows a free unit, the broker hears of it (a unit freed while another
    /// host was first was not told then).
    func serveTickets(_ entries: [EtcdKeyValue], serial: Int) {
        let stale = tickets.polled(entries.compactMap { entry in
            layout.ticket(key: entry.key).map { ($0.name, $0.host, entry.createRevision, SlotLayout.ticketPriority(entry.value)) }
        }, host: layout.host, serial: serial)
        for name in stale { client.deleteRange(.key(layout.ticketKey(kind: "models", name: name))) { _ in } }
        for name in slots.models.keys.sorted() {
            let (model, limit) = slots.models[name]!
            let priority = session.broker.fleetWaiterPriority(for: model, now: now)
            guard tickets.mine[name] != nil else {
                if let priority { queueBehind(model, priority: priority) }
                continue
            }
            if priority == nil && !session.broker.isClaiming(model) {
                leaveQueue(name)
                continue
            }
            if let priority, tickets.reprioritize(name, priority) { putTicket(name, priority: priority) }
            if session.broker.isFullAcrossCluster(model), tickets.mayClaim(name), slots.freeIndex(name: name, limit: limit) != nil {
                session.sharedCapacityFreed(model: model)
            }
        }
    }
}
