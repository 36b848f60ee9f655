import TurnstileCluster
import TurnstileCore

/// Who waits first for a shared limit's units across the fleet (protocol/CLUSTER.md §4),
/// waiter by waiter. Each request a host holds back for the fleet alone (a claim found the
/// limit full; `Broker.fleetWaiters`) has a ticket, `tickets/<kind>/<name>/<host>/<waiter>` on
/// the host lease, carrying its priority. The fleet's line: higher priority first (priorities
/// are 0 unless `fairness = "priority"`), then older ticket (create revision): the order of
/// arrival in the cluster. A host claims a unit of a limit only if its own first ticket comes
/// before every other host's (no ticket at all counts as the last): the others queue behind.
/// A request's ticket goes when its claim succeeds or it stops waiting, so the host's next
/// waiter keeps the place it arrived at. Waiters held back by their own host's limits put no
/// ticket and hold up no one; a dead host's tickets vanish with its lease. Within a host the
/// broker's own queue orders the waiters.
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

    /// One of this host's tickets: its request, its place, and the poll serial current when its
    /// put was acknowledged.
    struct Mine {
        let request: Ticket
        var place: Place
        var acknowledgedAt: Int?
    }

    /// One ticket as a poll shows it.
    struct Polled {
        let limit: SharedLimit
        let host: String
        let waiter: String
        let place: Place
    }

    /// This host's tickets, per limit by waiter.
    private(set) var mine: [SharedLimit: [String: Mine]] = [:]
    /// The first of the other hosts' tickets per limit, as last polled.
    private(set) var firstOther: [SharedLimit: Place] = [:]

    /// Whether this host may claim a unit of `limit` now.
    func mayClaim(_ limit: SharedLimit) -> Bool {
        guard let other = firstOther[limit] else { return true }
        guard let tickets = mine[limit] else { return false }
        return tickets.values.contains { $0.place.precedes(other) }
    }

    /// Whether this host holds a ticket for `waiter`.
    func holds(_ limit: SharedLimit, _ waiter: String) -> Bool { mine[limit]?[waiter] != nil }

    mutating func put(_ limit: SharedLimit, _ waiter: String, request: Ticket, priority: Int) -> Bool {
        guard mine[limit]?[waiter] == nil else { return false }
        mine[limit, default: [:]][waiter] = Mine(request: request, place: Place(priority: priority, revision: .max), acknowledgedAt: nil)
        return true
    }

    /// A waiter's priority changed (it aged): whether it did.
    mutating func reprioritize(_ limit: SharedLimit, _ waiter: String, _ priority: Int) -> Bool {
        guard let ticket = mine[limit]?[waiter], ticket.place.priority != priority else { return false }
        mine[limit]![waiter]!.place.priority = priority
        return true
    }

    mutating func acknowledged(_ limit: SharedLimit, _ waiter: String, poll: Int) {
        mine[limit]?[waiter]?.acknowledgedAt = poll
    }

    mutating func remove(_ limit: SharedLimit, _ waiter: String) -> Bool {
        guard mine[limit]?.removeValue(forKey: waiter) != nil else { return false }
        if mine[limit]!.isEmpty { mine[limit] = nil }
        return true
    }

    /// A poll's tickets (`serial`: the poll's number): the others' first, and the revisions of
    /// this host's tickets put before the poll was sent.
    /// A ticket of this host's acknowledged before the poll was sent and missing from it is
    /// gone (a deletion and a put of it raced, their order on the wire not being theirs): it is
    /// forgotten, so it is put again, instead of holding this host in a queue it is not in.
    /// - Returns: this host's tickets in etcd that it does not hold (the same race the other
    ///   way round): to delete, or they would hold the other hosts back.
    mutating func polled(_ tickets: [Polled], host: String, serial: Int) -> [(limit: SharedLimit, waiter: String)] {
        firstOther = [:]
        var seen = Set<String>()
        var stale: [(limit: SharedLimit, waiter: String)] = []
        for ticket in tickets {
            if ticket.host == host {
                seen.insert(ticket.limit.description + "\u{0}" + ticket.waiter)
                guard let held = mine[ticket.limit]?[ticket.waiter] else {
                    stale.append((ticket.limit, ticket.waiter))
                    continue
                }
                if let acknowledged = held.acknowledgedAt, acknowledged < serial {
                    mine[ticket.limit]![ticket.waiter]!.place.revision = ticket.place.revision
                }
            } else if firstOther[ticket.limit].map({ ticket.place.precedes($0) }) ?? true {
                firstOther[ticket.limit] = ticket.place
            }
        }
        for (limit, tickets) in mine {
            let kept = tickets.filter { waiter, ticket in
                seen.contains(limit.description + "\u{0}" + waiter) || (ticket.acknowledgedAt.map { $0 >= serial } ?? true)
            }
            mine[limit] = kept.isEmpty ? nil : kept
        }
        return stale
    }

    /// The host lease expired: its tickets went with it.
    mutating func leaseExpired() { mine.removeAll() }
}

extension ClusterLink {
    /// A waiter's name in its ticket's key: its connection's and request's serials.
    static func waiterName(_ ticket: Ticket) -> String { "\(ticket.client.serial)-\(ticket.request)" }

    /// A claim found `limit` full, or another host waits first: its request queues in the
    /// fleet's line, with its priority.
    func queueBehind(_ limit: SharedLimit, _ waiter: FleetWaiter) {
        let name = Self.waiterName(waiter.ticket)
        guard lease != nil, tickets.put(limit, name, request: waiter.ticket, priority: waiter.priority) else { return }
        putTicket(limit, name, priority: waiter.priority)
    }

    /// Writes this host's ticket for a waiter (again, for a new priority: a put keeps the key's
    /// create revision, so the ticket keeps its age).
    private func putTicket(_ limit: SharedLimit, _ waiter: String, priority: Int) {
        guard let lease else { return }
        client.put(ticketKey(limit, waiter), SlotLayout.ticketValue(priority: priority), lease: lease) { [inbox] result in
            inbox.post { link in
                if case .success = result {
                    link.tickets.acknowledged(limit, waiter, poll: link.pollSerial)
                } else {
                    _ = link.tickets.remove(limit, waiter)
                }
            }
        }
    }

    private func ticketKey(_ limit: SharedLimit, _ waiter: String) -> String {
        layout.ticketKey(kind: limit.kind, name: limit.name, waiter: waiter)
    }

    /// A request got a unit of `limit`, or no longer waits for one: its ticket goes.
    func leaveQueue(_ limit: SharedLimit, _ waiter: String) {
        guard tickets.remove(limit, waiter) else { return }
        client.deleteRange(.key(ticketKey(limit, waiter))) { _ in }
    }

    /// A unit of `limit` is free: the broker hears of it if this host is first in line.
    func capacityFreed(_ limit: SharedLimit) {
        logger.debug("cluster: unit freed", metadata: ["limit": "\(limit)", "first_in_line": "\(tickets.mayClaim(limit))"])
        guard tickets.mayClaim(limit) else { return }
        session.sharedCapacityFreed(limit)
    }

    /// After each poll: this host's tickets are brought in line with what its broker waits
    /// for. A waiter held back by the fleet alone gets a ticket if it has none (its claim may
    /// have failed while a poll was on its way), or its ticket's priority is brought up to
    /// date; a ticket of a request that no longer waits for the fleet, and has no claim
    /// pending, goes, as does a ticket of this host's in etcd that it does not hold. If this
    /// host is first in line and the book shows a free unit, the broker hears of it (a unit
    /// freed while another host was first was not told then).
    func serveTickets(_ entries: [EtcdKeyValue], serial: Int) {
        let stale = tickets.polled(entries.compactMap { entry in
            guard let ticket = layout.ticket(key: entry.key), let limit = SharedLimit(kind: ticket.kind, name: ticket.name) else { return nil }
            let place = TicketBook.Place(priority: SlotLayout.ticketPriority(entry.value), revision: entry.createRevision)
            return TicketBook.Polled(limit: limit, host: ticket.host, waiter: ticket.waiter, place: place)
        }, host: layout.host, serial: serial)
        for (limit, waiter) in stale { client.deleteRange(.key(ticketKey(limit, waiter))) { _ in } }
        let broker = session.broker
        for (limit, capacity) in slots.limits.sorted(by: { $0.key < $1.key }) {
            let waiters = broker.fleetWaiters(for: limit, now: now)
            var waiting = Set<String>()
            for waiter in waiters {
                let name = Self.waiterName(waiter.ticket)
                waiting.insert(name)
                if tickets.holds(limit, name) {
                    if tickets.reprioritize(limit, name, waiter.priority) { putTicket(limit, name, priority: waiter.priority) }
                } else {
                    queueBehind(limit, waiter)
                }
            }
            for (name, ticket) in tickets.mine[limit] ?? [:] where !waiting.contains(name) && !broker.isClaiming(ticket.request) {
                leaveQueue(limit, name)
            }
            if broker.isFullAcrossCluster(limit), tickets.mayClaim(limit), slots.freeIndex(limit, capacity: capacity) != nil {
                session.sharedCapacityFreed(limit)
            }
        }
    }

}
