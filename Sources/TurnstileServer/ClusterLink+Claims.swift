import TurnstileCluster
import TurnstileCore
import TurnstileSession

/// One slot of a claim: which unit of which limit, under which key.
struct PlacedSlot: Sendable {
    let fence: UInt64
    let limit: SharedLimit
    /// Which unit of the limit the slot is.
    let index: Int
    let key: String
    /// `{"host":…,"fence":…}`, compared before a deletion so only this claim's slot goes.
    let value: [UInt8]
}

/// A claim placed in slots, one per unit it needs: what was sent, so its outcome can be
/// matched, read back and undone.
struct PlacedClaim: Sendable {
    let fence: UInt64
    /// What the broker asked for (placed again after a conflict).
    let units: [SharedUnit]
    let slots: [PlacedSlot]
    /// Its place in its transaction: `cluster_fence` is the revision × 1024 + this.
    var position = 0
    /// Whether it claims again the units of a lease kept through a loss (no request waits).
    var reclaim = false

    /// Its nested transaction: every slot free, then all put; else each read.
    func operation(lease: EtcdLeaseID) -> EtcdOperation {
        .txn(compares: slots.map { .absent($0.key) },
             success: slots.map { .put(key: $0.key, value: $0.value, lease: lease) },
             failure: slots.map { .get(.key($0.key)) })
    }
}

/// The claims and unclaims of a turn, their outcomes and read-backs, and deletions
/// (protocol/CLUSTER.md §3, §8). Every write goes in transactions of nested ones, one per
/// claim, each `if every slot's create_revision == 0 then put them all else get them`, so a
/// slot taken meanwhile fails only its own claim, and a claim takes all its units or none.
extension ClusterLink {
    /// At the commit, once the journal and the fence reservation are durable: the turn's
    /// unclaims become deletions and its claims go out together.
    func send(claims: [ClaimRequest], unclaims: [Unclaim]) {
        guard !stopped else { return }
        for unclaim in unclaims {
            if excess.remove(unclaim.fence) != nil { server.clusterMetrics.excess = excess.count }
            guard let given = slots.release(fence: unclaim.fence) else { continue }
            deletions += given
        }
        var placed: [PlacedClaim] = []
        for claim in claims {
            for unit in claim.units { slots.claimed(unit.limit, capacity: unit.capacity) }
            switch place(fence: claim.fence, units: claim.units) {
            case .placed(let claim):
                placed.append(claim)
            case .full(let limit) where tickets.mayClaim(limit) && slots.isDeleting(limit):
                // A unit this host gave back is on its way back to the fleet: claim it once the
                // deletion is acknowledged rather than find the limit full meanwhile.
                behindDeletions.append(claim)
            case .full(let limit):
                logger.debug("cluster: claim held back", metadata: ["fence": "\(claim.fence)", "limit": "\(limit)",
                                                                     "first_in_line": "\(tickets.mayClaim(limit))"])
                // No slot free as far as this host knows, or another host waits first: the
                // request waits (or is refused), and this host queues (ClusterLink+Tickets).
                if let waiter = session.broker.claimWaiter(fence: claim.fence, now: now) { queueBehind(limit, waiter) }
                inbox.post { $0.session.claimFailed(fence: claim.fence, full: limit) }
            }
        }
        sendClaims(placed)
        sendDeletions()
    }

    /// Where a claim goes: into slots this host thinks free, or nowhere, for the first limit
    /// with none free (or another host first in its line).
    private enum Placement {
        case placed(PlacedClaim)
        case full(SharedLimit)
    }

    /// Chooses a free slot of each unit's limit and marks them in flight. A new claim keeps
    /// its place in the fleet's line (`inLine`); a re-claim of a kept lease's units does not
    /// wait behind other hosts (its work is running).
    private func place(fence: UInt64, units: [SharedUnit], inLine: Bool = true) -> Placement {
        var placed: [PlacedSlot] = []
        placed.reserveCapacity(units.count)
        let value = layout.slotValue(fence: fence)
        for unit in units {
            guard !inLine || tickets.mayClaim(unit.limit), let index = slots.freeIndex(unit.limit, capacity: unit.capacity) else {
                return .full(unit.limit)
            }
            placed.append(PlacedSlot(fence: fence, limit: unit.limit, index: index,
                                     key: layout.slotKey(kind: unit.limit.kind, name: unit.limit.name, index: index), value: value))
        }
        let claim = PlacedClaim(fence: fence, units: units, slots: placed)
        slots.claiming(claim)
        return .placed(claim)
    }

    /// After a new host lease (the old one expired, and its slots with it): every lease kept
    /// through the loss (`on_loss = "keep"`) claims its unit again. A lease whose unit another
    /// host took meanwhile runs on in excess of the fleet's limit: counted in `status` and the
    /// metrics (`excess`) until it ends (protocol/CLUSTER.md §5).
    func reclaimKeptUnits() {
        let kept = session.broker.heldSharedUnits
        guard !kept.isEmpty else { return }
        var placed: [PlacedClaim] = []
        for held in kept {
            for unit in held.units { slots.claimed(unit.limit, capacity: unit.capacity) }
            if case .placed(var claim) = place(fence: held.fence, units: held.units, inLine: false) {
                claim.reclaim = true
                placed.append(claim)
            } else {
                excess.insert(held.fence)
            }
        }
        server.clusterMetrics.excess = excess.count
        logger.info("cluster: claiming again the units of leases kept through the loss",
                    metadata: ["leases": "\(kept.count)", "no_free_unit": "\(kept.count - placed.count)"])
        sendClaims(placed)
    }

    /// Queues claims for `flushClaims`. Under way: `claimQueue` and `claimTransactions`.
    private func sendClaims(_ claims: [PlacedClaim]) {
        claimQueue += claims
        flushClaims()
    }

    /// Sends the queued claims in transactions as full as etcd takes (`batch`), no more than
    /// `claimTransactionsAtOnce` under way: claims that come while they are wait for one to
    /// come back and go together (fewer, fuller transactions: etcd's cost is per transaction).
    /// A transaction also carries the deletions waiting to go if none is under way.
    func flushClaims() {
        guard let lease else {
            // Registering again: the broker claims only while the cluster is available, so
            // these were sent just as it was lost. They did not apply.
            let queued = claimQueue
            claimQueue.removeAll()
            for claim in queued { notApplied(claim) }
            return
        }
        while !claimQueue.isEmpty, claimTransactions < Self.claimTransactionsAtOnce, !stopped {
            var batch = takeClaimBatch()
            for position in batch.indices { batch[position].position = position }
            var operations = batch.map { $0.operation(lease: lease) }
            let widest = batch.map(\.slots.count).max() ?? 1
            let riders = takeDeletions(room: Self.operationsPerTransaction + 1 - widest - batch.count)
            operations += riders.map(Self.deletion)
            server.clusterMetrics.claimTransactions += 1
            claimTransactions += 1
            let sentAt = EtcdClock.now(), sent = batch
            client.txn([], success: operations) { [inbox] result in
                let elapsed = EtcdClock.now() &- sentAt
                inbox.post { link in
                    link.claimTransactions -= 1
                    link.claimed(sent, result, nanoseconds: elapsed)
                    if !riders.isEmpty { link.deleted(riders, result) }
                    link.flushClaims()
                }
            }
        }
    }

    /// The next claims to send together, at most as many as etcd takes: its limit of
    /// operations per branch (`--max-txn-ops`) applies to the outer transaction and, to each
    /// nested one, less the outer one's count (etcd 3.4's `checkTxnRequest`), so nested claims
    /// of up to `w` slots each fit `operationsPerTransaction + 1 − w` to a transaction.
    private func takeClaimBatch() -> [PlacedClaim] {
        var widest = 1, count = 0
        for claim in claimQueue {
            let wider = max(widest, claim.slots.count)
            guard count + 1 + wider <= Self.operationsPerTransaction + 1 else { break }
            widest = wider
            count += 1
        }
        let batch = Array(claimQueue.prefix(max(count, 1)))
        claimQueue.removeFirst(batch.count)
        return batch
    }

    /// A claim transaction came back.
    private func claimed(_ batch: [PlacedClaim], _ result: Result<EtcdTxnResult, EtcdError>, nanoseconds: UInt64) {
        server.clusterMetrics.observeRoundTrip(nanoseconds: nanoseconds)
        switch result {
        case .failure(let error) where error.outcome == .notApplied:
            for claim in batch { notApplied(claim) }
        case .failure(let error):
            logger.warning("cluster: a claim transaction's outcome is unknown; reading its slots back",
                           metadata: ["claims": "\(batch.count)", "error": "\(error)"])
            for claim in batch where !claim.reclaim { session.claimOutcomeUnknown(fence: claim.fence) }
            readBacks += batch
            retryReadBacks()
        case .success(let answer):
            var retries: [PlacedClaim] = []
            for claim in batch {
                guard claim.position < answer.results.count, case .txn(let nested) = answer.results[claim.position] else {
                    if !claim.reclaim { session.claimOutcomeUnknown(fence: claim.fence) }
                    readBacks.append(claim)
                    continue
                }
                if nested.succeeded {
                    took(claim, clusterFence: Self.clusterFence(revision: answer.revision, position: claim.position))
                    continue
                }
                // A slot taken meanwhile: note the holders, then try slots this host thinks free.
                server.clusterMetrics.conflicts += 1
                var taken: [SharedLimit] = []
                for (slot, read) in zip(claim.slots, nested.results) {
                    guard case .get(let range) = read, let holder = range.keyValues.first else { continue }
                    taken.append(slot.limit)
                    slots.observe(key: holder.key, value: holder.value, layout: layout)
                }
                slots.conflicted(claim, taken: taken)
                switch place(fence: claim.fence, units: claim.units, inLine: !claim.reclaim) {
                case .placed(var retry):
                    retry.reclaim = claim.reclaim
                    retries.append(retry)
                case .full where claim.reclaim:
                    excess.insert(claim.fence)
                    server.clusterMetrics.excess = excess.count
                case .full(let limit):
                    if let waiter = session.broker.claimWaiter(fence: claim.fence, now: now) { queueBehind(limit, waiter) }
                    session.claimFailed(fence: claim.fence, full: limit)
                }
            }
            sendClaims(retries)
            retryReadBacks()
        }
    }

    /// A claim's slots are this host's: the broker grants its request, or, if no claim waits
    /// with that fence any more, the slots are deleted.
    private func took(_ claim: PlacedClaim, clusterFence: UInt64?) {
        slots.took(claim)
        if claim.reclaim { return }
        server.clusterMetrics.claimsWon += 1
        if let waiter = session.broker.claimWaiter(fence: claim.fence, now: now) {
            for unit in claim.units { leaveQueue(unit.limit, Self.waiterName(waiter.ticket)) }
        }
        guard let clusterFence, session.claimSucceeded(fence: claim.fence, clusterFence: clusterFence) else {
            if let given = slots.release(fence: claim.fence) { deletions += given }
            sendDeletions()
            return
        }
    }

    /// A claim that did not take: its request claims anew; a re-claim counts in excess.
    private func notApplied(_ claim: PlacedClaim) {
        slots.forget(claim)
        if claim.reclaim {
            excess.insert(claim.fence)
            server.clusterMetrics.excess = excess.count
        } else {
            inbox.post { $0.session.claimNotApplied(fence: claim.fence) }
        }
    }

    /// `cluster_fence` (protocol/CLUSTER.md §3.3); nil for a revision too large to encode.
    static func clusterFence(revision: Int64, position: Int) -> UInt64? {
        guard revision > 0 else { return nil }
        let (scaled, overflow) = UInt64(revision).multipliedReportingOverflow(by: 1024)
        guard !overflow, position >= 0, position < 1024 else { return nil }
        return scaled + UInt64(position)
    }

    /// Reads back the slots of claims whose outcome is unknown (protocol/CLUSTER.md §3.4): a
    /// claim whose slots hold `{host, fence}` was applied (its transaction put all or none),
    /// anything else was not. Each claim's reads are one nested transaction.
    func retryReadBacks() {
        guard !readingBack, !readBacks.isEmpty, !stopped else { return }
        readingBack = true
        let batch = Array(readBacks.prefix(Self.operationsPerTransaction / 2))
        let reads = batch.map { claim in EtcdOperation.txn(compares: [], success: claim.slots.map { .get(.key($0.key)) }, failure: []) }
        client.txn([], success: reads) { [inbox] result in
            inbox.post { $0.readBack(batch, result) }
        }
    }

    private func readBack(_ batch: [PlacedClaim], _ result: Result<EtcdTxnResult, EtcdError>) {
        readingBack = false
        guard case .success(let answer) = result, answer.results.count == batch.count else { return }
        let done = Set(batch.map(\.fence))
        readBacks.removeAll { done.contains($0.fence) }
        for (claim, found) in zip(batch, answer.results) {
            let reads: [EtcdKeyValue] = if case .txn(let nested) = found {
                nested.results.compactMap { if case .get(let range) = $0 { range.keyValues.first } else { nil } }
            } else { [] }
            guard reads.count == claim.slots.count, let read = reads.first,
                  zip(claim.slots, reads).allSatisfy({ $0.value == $1.value })
            else {
                notApplied(claim)
                continue
            }
            took(claim, clusterFence: Self.clusterFence(revision: read.createRevision, position: claim.position))
        }
        retryReadBacks()
    }

    /// Deletes the slots given back, each only if it still holds this host's claim (after the
    /// host lease expired another host may hold the key). Kept and retried until acknowledged;
    /// one batch at a time, alone or riding in a claim transaction.
    func sendDeletions() {
        let batch = takeDeletions(room: Self.operationsPerTransaction)
        guard !batch.isEmpty else { return }
        client.txn([], success: batch.map(Self.deletion)) { [inbox] result in
            inbox.post { $0.deleted(batch, result) }
        }
    }

    /// The next batch of deletions to send, at most `room`, marked under way; none while a
    /// batch is under way.
    private func takeDeletions(room: Int) -> [PlacedSlot] {
        guard !deleting, room > 0, !deletions.isEmpty, lease != nil, !stopped else { return [] }
        deleting = true
        return Array(deletions.prefix(room))
    }

    /// A deletion as a nested transaction: only if the slot still holds this host's claim.
    private static func deletion(_ slot: PlacedSlot) -> EtcdOperation {
        .txn(compares: [.value(slot.key, .equal, slot.value)], success: [.delete(.key(slot.key))], failure: [])
    }

    private func deleted(_ batch: [PlacedSlot], _ result: Result<EtcdTxnResult, EtcdError>) {
        deleting = false
        if case .failure(let error) = result {
            logger.warning("cluster: a deletion of given-back slots failed; trying again", metadata: [
                "slots": "\(batch.count)", "error": "\(error)"])
            return
        }
        let done = Set(batch.map(\.key))
        deletions.removeAll { done.contains($0.key) }
        var freed = Set<SharedLimit>()
        for slot in batch where slots.deleted(slot) { freed.insert(slot.limit) }
        for limit in freed.sorted() { capacityFreed(limit) }
        sendDeletions()
        if !behindDeletions.isEmpty {
            let waiting = behindDeletions
            behindDeletions.removeAll()
            send(claims: waiting, unclaims: [])
        }
    }
}
