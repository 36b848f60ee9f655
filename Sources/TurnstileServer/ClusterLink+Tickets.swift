import TurnstileCluster
import TurnstileCore

/// Who waits first for a shared limit's units across the fleet (protocol/CLUSTER.md §4), host
/// by host. A host whose waiters for a limit are held back by the fleet alone (a claim found
/// the limit full; `Broker.fleetWaiterPriority`) puts a ticket, `tickets/<kind>/<name>/<host>`
/// on its host lease, carrying the priority of the best of those waiters. The fleet's line:
/// higher priority first (priorities are 0 unless `fairness = "priority"`), then older ticket
/// (create revision). A host claims a unit of a limit only if no other host's ticket comes
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

    /// This host's tickets, by limit.
    private(set) var mine: [SharedLimit: Mine] = [:]
    /// The first of the other hosts' tickets per limit, as last polled.
    private(set) var firstOther: [SharedLimit: Place] = [:]

    /// Whether this host may claim a unit of `name` now.
    func mayClaim(_ name: SharedLimit) -> Bool {
        guard let other = firstOther[name] else { return true }
        guard let mine = mine[name] else { return false }
        return mine.place.precedes(other)
    }

    mutating func put(_ name: SharedLimit, priority: Int) -> Bool {
        guard mine[name] == nil else { return false }
        mine[name] = Mine(place: Place(priority: priority, revision: .max), acknowledgedAt: nil)
        return true
    }

    /// A ticket's priority changed (a better waiter came, or the best left): whether it did.
    mutating func reprioritize(_ name: SharedLimit, _ priority: Int) -> Bool {
        guard let ticket = mine[name], ticket.place.priority != priority else { return false }
        mine[name]!.place.priority = priority
        return true
    }

    mutating func acknowledged(_ name: SharedLimit, poll: Int) {
        mine[name]?.acknowledgedAt = poll
    }

    mutating func remove(_ name: SharedLimit) -> Bool { mine.removeValue(forKey: name) != nil }

    /// A poll's tickets (`serial`: the poll's number): the others' first, and the revisions of
    /// this host's tickets put before the poll was sent.
    /// A ticket of this host's acknowledged before the poll was sent and missing from it is
    /// gone (a deletion and a put of it raced, their order on the wire not being theirs): it is
    /// forgotten, so it is put again, instead of holding this host in a queue it is not in.
    /// - Returns: the limits of this host's tickets in etcd that it does not hold (the same race
    ///   the other way round): to delete, or they would hold the other hosts back.
    mutating func polled(_ tickets: [(name: SharedLimit, host: String, revision: Int64, priority: Int)], host: String,
                         serial: Int) -> [SharedLimit] {
        firstOther = [:]
        var seen = Set<SharedLimit>()
        var stale: [SharedLimit] = []
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
    /// A claim found `limit` full, or another host waits first: this host queues, with the
    /// priority of its best waiter held back by the fleet (`priority`).
    func queueBehind(_ limit: SharedLimit, priority: Int) {
        guard lease != nil, tickets.put(limit, priority: priority) else { return }
        putTicket(limit, priority: priority)
    }

    /// Writes this host's ticket for `limit` (again, for a new priority: a put keeps the key's
    /// create revision, so the ticket keeps its age).
    private func putTicket(_ limit: SharedLimit, priority: Int) {
        guard let lease else { return }
        client.put(ticketKey(limit), SlotLayout.ticketValue(priority: priority), lease: lease) { [inbox] result in
            inbox.post { link in
                if case .success = result {
                    link.tickets.acknowledged(limit, poll: link.pollSerial)
                } else {
                    _ = link.tickets.remove(limit)
                }
            }
        }
    }

    private func ticketKey(_ limit: SharedLimit) -> String { layout.ticketKey(kind: limit.kind, name: limit.name) }

    /// This host got a unit of `limit`, or no longer waits for one: its ticket goes.
    func leaveQueue(_ limit: SharedLimit) {
        guard tickets.remove(limit) else { return }
        client.deleteRange(.key(ticketKey(limit))) { _ in }
    }

    /// A unit of `limit` is free: the broker hears of it if this host is first in line.
    func capacityFreed(_ limit: SharedLimit) {
        logger.debug("cluster: unit freed", metadata: ["limit": "\(limit)", "first_in_line": "\(tickets.mayClaim(limit))"])
        guard tickets.mayClaim(limit) else { return }
        session.sharedCapacityFreed(limit)
    }

    /// After each poll: this host's tickets are brought in line with what its broker waits
    /// for. A limit with waiters held back by the fleet alone gets a ticket if it has none (its
    /// claim may have failed while a poll was on its way), or its ticket's priority is brought
    /// up to date; a ticket of a limit with no such waiter, and no claim of it pending, goes,
    /// as does a ticket of this host's in etcd that it does not hold. If this host is first in
    /// line and the book shows a free unit, the broker hears of it (a unit freed while another
    /// host was first was not told then).
    func serveTickets(_ entries: [EtcdKeyValue], serial: Int) {
        let stale = tickets.polled(entries.compactMap { entry in
            guard let ticket = layout.ticket(key: entry.key), let limit = SharedLimit(kind: ticket.kind, name: ticket.name) else { return nil }
            return (limit, ticket.host, entry.createRevision, SlotLayout.ticketPriority(entry.value))
        }, host: layout.host, serial: serial)
        for limit in stale { client.deleteRange(.key(ticketKey(limit))) { _ in } }
        for (limit, capacity) in slots.limits.sorted(by: { $0.key < $1.key }) {
            let priority = session.broker.fleetWaiterPriority(for: limit, now: now)
            guard tickets.mine[limit] != nil else {
                if let priority { queueBehind(limit, priority: priority) }
                continue
            }
            if priority == nil && !session.broker.isClaiming(limit) {
                leaveQueue(limit)
                continue
            }
            if let priority, tickets.reprioritize(limit, priority) { putTicket(limit, priority: priority) }
            if session.broker.isFullAcrossCluster(limit), tickets.mayClaim(limit), slots.freeIndex(limit, capacity: capacity) != nil {
                session.sharedCapacityFreed(limit)
            }
        }
    }
}
