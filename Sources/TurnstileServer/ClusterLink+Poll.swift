import TurnstileCluster
import TurnstileCore

/// The slots poll (protocol/CLUSTER.md §3.2, §3.4, §8): every tick this host reads every slot
/// of the fleet, one range read. What it shows replaces the other hosts' slots in the book, so
/// claims choose free slots; a unit freed since the last poll is reported to the broker
/// (`sharedCapacityFreed`), which lets waiters a failed claim held back claim again; and a slot
/// of this host's that nothing here owns (a claim that committed after its read-back found
/// nothing, or a slot of this host's previous run) is deleted.
///
/// The same read brings the shared throttles and flags when `[cluster]` shares them
/// (ClusterLink+Controls).
///
/// A read per tick, rather than etcd's Watch stream, keeps the client to unary calls: its cost
/// is one small read-only transaction per host per tick, and a unit freed on another host is
/// seen within a tick (100 ms).
extension ClusterLink {
    func poll() {
        guard !polling, !stopped else { return }
        polling = true
        pollSerial += 1
        let serial = pollSerial
        nextPollAt = now.adding(milliseconds: Self.tickMilliseconds)
        let reads = [layout.slotsPrefix, layout.ticketsPrefix] + sharedControlPrefixes + (sharesPauses ? [layout.pausesPrefix] : [])
        client.txn([], success: reads.map { .get(.prefix($0)) }) { [inbox] result in
            inbox.post { $0.polled(result, serial: serial) }
        }
    }

    private func polled(_ result: Result<EtcdTxnResult, EtcdError>, serial: Int) {
        polling = false
        guard case .success(let answer) = result else { return }
        let ranges = answer.results.compactMap { result -> EtcdRangeResult? in
            if case .get(let range) = result { range } else { nil }
        }
        let controls = sharedControlPrefixes.count
        guard ranges.count == 2 + controls + (sharesPauses ? 1 : 0) else { return }
        let range = ranges[0]
        controlsPolled(Array(ranges[2..<2 + controls]).flatMap(\.keyValues), serial: serial)
        if sharesPauses { pausesPolled(ranges[2 + controls].keyValues, serial: serial) }
        // The line first: a unit this poll shows freed goes to this host's broker only if this
        // host is first in the line as this same poll shows it.
        serveTickets(ranges[1].keyValues, serial: serial)
        var polled: [String: SlotLayout.Slot] = [:]
        var orphans: [PlacedSlot] = []
        for entry in range.keyValues {
            let slot = layout.takenSlot(key: entry.key, value: entry.value)
            polled[entry.key] = slot
            guard slot.host == layout.host, !slots.isOwn(entry.key), !session.ownsSharedUnit(fence: slot.fence),
                  let limit = SharedLimit(kind: slot.kind, name: slot.name)
            else { continue }
            orphans.append(PlacedSlot(fence: slot.fence, limit: limit, index: slot.index, key: entry.key, value: entry.value))
        }
        for limit in slots.replaceObserved(with: polled, host: layout.host) { capacityFreed(limit) }
        server.clusterMetrics.useByHost = slots.useByHost()
        for orphan in orphans {
            logger.info("cluster: deleting a slot of this host that no lease here holds",
                        metadata: ["key": "\(orphan.key)", "fence": "\(orphan.fence)"])
            slots.orphaned(orphan)
            deletions.append(orphan)
        }
        sendDeletions()
    }
}

/// Keys this host is writing or just wrote, so that a poll sent before a write was
/// acknowledged is not taken for news of them (it may show the key as it was before): for
/// each, `Int.max` while the write is in flight, then the poll serial current when it was
/// acknowledged. Only polls sent after that say anything of the key.
struct RecentWrites {
    private var acknowledgedAt: [String: Int] = [:]

    mutating func began(_ key: String) { acknowledgedAt[key] = .max }

    mutating func acknowledged(_ key: String, poll: Int) { acknowledgedAt[key] = poll }

    /// Whether the poll sent as number `serial` says nothing new of `key`. A key every later
    /// poll sees is forgotten.
    mutating func hides(_ key: String, from serial: Int) -> Bool {
        guard let acknowledged = acknowledgedAt[key] else { return false }
        if serial <= acknowledged { return true }
        acknowledgedAt[key] = nil
        return false
    }
}
