import TurnstileCluster
import TurnstileCore

/// Who waits first for a shared model's units across the fleet (protocol/CLUSTER.md §4), host
/// by host. A host whose claim found the model full puts a ticket, `tickets/models/<name>/<host>`
/// on its host lease; the tickets' create revisions order the waiting hosts. A host claims a
/// unit of a model only if no other host's ticket for it is older than its own (no ticket at
/// all counts as the newest): the others queue behind with a ticket of their own. A host whose
/// claim succeeds deletes its ticket, so if it still has waiters it queues again behind the
/// others: freed units go round the waiting hosts in turn, and a host whose units keep turning
/// over (its own waiters would otherwise take each unit it gives back) cannot starve the
/// others. A waiter blocked by its own host's limits never claims, so it puts no ticket and
/// holds up no one; a dead host's tickets vanish with its lease. Within a host the broker's own
/// queue orders the waiters.
struct TicketBook {
    /// This host's tickets, by model name: the create revision once a poll has shown it
    /// (`Int64.max` until then: it counts as the newest), and the poll serial current when its
    /// put was acknowledged.
    private(set) var mine: [String: (revision: Int64, acknowledgedAt: Int?)] = [:]
    /// The oldest other host's ticket per model name, as last polled.
    private(set) var oldestOther: [String: Int64] = [:]

    /// Whether this host may claim a unit of `name` now.
    func mayClaim(_ name: String) -> Bool {
        guard let other = oldestOther[name] else { return true }
        guard let mine = mine[name] else { return false }
        return mine.revision < other
    }

    mutating func put(_ name: String) -> Bool {
        guard mine[name] == nil else { return false }
        mine[name] = (.max, nil)
        return true
    }

    mutating func acknowledged(_ name: String, poll: Int) {
        mine[name]?.acknowledgedAt = poll
    }

    mutating func remove(_ name: String) -> Bool { mine.removeValue(forKey: name) != nil }

    /// A poll's tickets (`serial`: the poll's number): the others' oldest, and the revisions of
    /// this host's tickets put before the poll was sent.
    /// A ticket of this host's acknowledged before the poll was sent and missing from it is
    /// gone (a deletion and a put of it raced, their order on the wire not being theirs): it is
    /// forgotten, so it is put again, instead of holding this host in a queue it is not in.
    mutating func polled(_ tickets: [(name: String, host: String, revision: Int64)], host: String, serial: Int) {
        oldestOther = [:]
        var seen = Set<String>()
        for ticket in tickets {
            if ticket.host == host {
                seen.insert(ticket.name)
                if let acknowledged = mine[ticket.name]?.acknowledgedAt, acknowledged < serial {
                    mine[ticket.name]!.revision = ticket.revision
                }
            } else {
                oldestOther[ticket.name] = min(oldestOther[ticket.name] ?? .max, ticket.revision)
            }
        }
        mine = mine.filter { name, ticket in seen.contains(name) || (ticket.acknowledgedAt.map { $0 >= serial } ?? true) }
    }

    /// The host lease expired: its tickets went with it.
    mutating func leaseExpired() { mine.removeAll() }
}

extension ClusterLink {
    /// A claim of `model` found it full, or another host waits first: this host queues.
    func queueBehind(_ model: ModelKey) {
        let name = model.description
        guard let lease, tickets.put(name) else { return }
        client.put(layout.ticketKey(kind: "models", name: name), [], lease: lease) { [inbox] result in
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
    /// for. A model the broker counts as full gets a ticket if it has none (its claim may have
    /// failed while a poll was on its way); a ticket of a model no longer full, with no claim of
    /// it pending, goes. If this host is first in line and the book shows a free unit, the
    /// broker hears of it (a unit freed while another host was first was not told then).
    func serveTickets(_ entries: [EtcdKeyValue], serial: Int) {
        tickets.polled(entries.compactMap { entry in
            layout.ticket(key: entry.key).map { ($0.name, $0.host, entry.createRevision) }
        }, host: layout.host, serial: serial)
        for name in slots.models.keys.sorted() {
            let (model, limit) = slots.models[name]!
            let full = session.broker.isFullAcrossCluster(model)
            guard tickets.mine[name] != nil else {
                if full { queueBehind(model) }
                continue
            }
            if !full && !session.broker.isClaiming(model) {
                leaveQueue(name)
            } else if full, tickets.mayClaim(name), slots.freeIndex(name: name, limit: limit) != nil {
                session.sharedCapacityFreed(model: model)
            }
        }
    }
}
