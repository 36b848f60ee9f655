import TurnstileCluster
import TurnstileCore
import TurnstileSession

/// A claim on one slot: what was sent, so its outcome can be matched, read back and undone.
struct PlacedClaim: Sendable {
    let fence: UInt64
    let model: ModelKey
    /// The model's name as keys spell it (`model.description`, made once).
    let name: String
    let limit: Int
    /// Which unit of the model's limit the slot is.
    let index: Int
    let key: String
    /// `{"host":…,"fence":…}`, compared before a deletion so only this claim's slot goes.
    let value: [UInt8]
    /// Its place in its transaction: `cluster_fence` is the revision × 1024 + this.
    var position = 0
    /// Whether it claims again the unit of a lease kept through a loss (no request waits).
    var reclaim = false
}

/// The claims and unclaims of a turn, their outcomes and read-backs, and deletions
/// (protocol/CLUSTER.md §3, §8). Every write goes in transactions of at most 127 nested ones,
/// one per slot, each `if create_revision(slot) == 0 then put else get`, so a slot taken
/// meanwhile fails only its own claim.
extension ClusterLink {
    /// At the commit, once the journal and the fence reservation are durable: the turn's
    /// unclaims become deletions and its claims go out together.
    func send(claims: [ClaimRequest], unclaims: [Unclaim]) {
        guard !stopped else { return }
        for unclaim in unclaims {
            if excess.remove(unclaim.fence) != nil { server.clusterMetrics.excess = excess.count }
            guard let placed = slots.release(fence: unclaim.fence) else { continue }
            deletions.append(placed)
        }
        var placed: [PlacedClaim] = []
        for claim in claims {
            let name = claim.model.description
            slots.claimed(claim.model, name: name, limit: claim.limit)
            if tickets.mayClaim(name), let claim = place(fence: claim.fence, model: claim.model, name: name, limit: claim.limit) {
                placed.append(claim)
            } else if tickets.mayClaim(name), slots.isDeleting(name: name) {
                // A unit this host gave back is on its way back to the fleet: claim it once the
                // deletion is acknowledged rather than find the model full meanwhile.
                behindDeletions.append(claim)
            } else {
                logger.debug("cluster: claim held back",
                             metadata: ["fence": "\(claim.fence)", "first_in_line": "\(tickets.mayClaim(claim.model.description))"])
                // No slot free as far as this host knows, or another host waits first: the
                // request waits (or is refused), and this host queues (ClusterLink+Tickets).
                queueBehind(claim.model, priority: queuePriority(claim.model, fence: claim.fence))
                inbox.post { $0.session.claimFailed(fence: claim.fence) }
            }
        }
        sendClaims(placed)
        sendDeletions()
    }

    /// The priority this host queues with when a claim of `model` finds it full: the best of
    /// the claim's request and the waiters the fleet already holds back.
    private func queuePriority(_ model: ModelKey, fence: UInt64) -> Int {
        let broker = session.broker
        return max(broker.claimPriority(fence: fence, now: now) ?? 0, broker.fleetWaiterPriority(for: model, now: now) ?? .min)
    }

    /// Chooses a free slot for a claim and marks it in flight; nil if none is free.
    private func place(fence: UInt64, model: ModelKey, name: String, limit: Int) -> PlacedClaim? {
        guard let index = slots.freeIndex(name: name, limit: limit) else { return nil }
        let claim = PlacedClaim(fence: fence, model: model, name: name, limit: limit, index: index,
                                key: layout.slotKey(kind: "models", name: name, index: index), value: layout.slotValue(fence: fence))
        slots.claiming(claim)
        return claim
    }

    /// After a new host lease (the old one expired, and its slots with it): every lease kept
    /// through the loss (`on_loss = "keep"`) claims its unit again. A lease whose unit another
    /// host took meanwhile runs on in excess of the fleet's limit: counted in `status` and the
    /// metrics (`excess`) until it ends (protocol/CLUSTER.md §5).
    func reclaimKeptUnits() {
        let kept = session.broker.heldSharedUnits
        guard !kept.isEmpty else { return }
        var placed: [PlacedClaim] = []
        for unit in kept {
            let name = unit.model.description
            slots.claimed(unit.model, name: name, limit: unit.limit)
            if var claim = place(fence: unit.fence, model: unit.model, name: name, limit: unit.limit) {
                claim.reclaim = true
                placed.append(claim)
            } else {
                excess.insert(unit.fence)
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

    /// Sends the queued claims in transactions of at most 127, no more than
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
            var batch = Array(claimQueue.prefix(Self.operationsPerTransaction))
            claimQueue.removeFirst(batch.count)
            for position in batch.indices { batch[position].position = position }
            var operations = batch.map { claim in
                EtcdOperation.txn(compares: [.absent(claim.key)],
                                  success: [.put(key: claim.key, value: claim.value, lease: lease)],
                                  failure: [.get(.key(claim.key))])
            }
            let riders = takeDeletions(room: Self.operationsPerTransaction - batch.count)
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
                // Taken meanwhile: note its holder, then try another slot this host thinks free.
                server.clusterMetrics.conflicts += 1
                slots.conflicted(claim)
                if case .get(let range)? = nested.results.first, let holder = range.keyValues.first {
                    slots.observe(key: holder.key, value: holder.value, layout: layout)
                }
                if var retry = place(fence: claim.fence, model: claim.model, name: claim.name, limit: claim.limit) {
                    retry.reclaim = claim.reclaim
                    retries.append(retry)
                } else if claim.reclaim {
                    excess.insert(claim.fence)
                    server.clusterMetrics.excess = excess.count
                } else {
                    queueBehind(claim.model, priority: queuePriority(claim.model, fence: claim.fence))
                    session.claimFailed(fence: claim.fence)
                }
            }
            sendClaims(retries)
            retryReadBacks()
        }
    }

    /// A claim's slot is this host's: the broker grants its request, or, if no claim waits
    /// with that fence any more, the slot is deleted.
    private func took(_ claim: PlacedClaim, clusterFence: UInt64?) {
        slots.took(claim)
        if claim.reclaim { return }
        server.clusterMetrics.claimsWon += 1
        leaveQueue(claim.model.description)
        guard let clusterFence, session.claimSucceeded(fence: claim.fence, clusterFence: clusterFence) else {
            if let placed = slots.release(fence: claim.fence) { deletions.append(placed) }
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
    /// slot holding `{host, fence}` was claimed, anything else was not.
    func retryReadBacks() {
        guard !readingBack, !readBacks.isEmpty, !stopped else { return }
        readingBack = true
        let batch = Array(readBacks.prefix(Self.operationsPerTransaction))
        client.txn([], success: batch.map { .get(.key($0.key)) }) { [inbox] result in
            inbox.post { $0.readBack(batch, result) }
        }
    }

    private func readBack(_ batch: [PlacedClaim], _ result: Result<EtcdTxnResult, EtcdError>) {
        readingBack = false
        guard case .success(let answer) = result, answer.results.count == batch.count else { return }
        let done = Set(batch.map(\.fence))
        readBacks.removeAll { done.contains($0.fence) }
        for (claim, found) in zip(batch, answer.results) {
            guard case .get(let range) = found, let slot = range.keyValues.first, slot.value == claim.value else {
                notApplied(claim)
                continue
            }
            took(claim, clusterFence: Self.clusterFence(revision: slot.createRevision, position: claim.position))
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
    private func takeDeletions(room: Int) -> [PlacedClaim] {
        guard !deleting, room > 0, !deletions.isEmpty, lease != nil, !stopped else { return [] }
        deleting = true
        return Array(deletions.prefix(room))
    }

    /// A deletion as a nested transaction: only if the slot still holds this host's claim.
    private static func deletion(_ slot: PlacedClaim) -> EtcdOperation {
        .txn(compares: [.value(slot.key, .equal, slot.value)], success: [.delete(.key(slot.key))], failure: [])
    }

    private func deleted(_ batch: [PlacedClaim], _ result: Result<EtcdTxnResult, EtcdError>) {
        deleting = false
        if case .failure(let error) = result {
            logger.warning("cluster: a deletion of given-back slots failed; trying again", metadata: [
                "slots": "\(batch.count)", "error": "\(error)"])
            return
        }
        let done = Set(batch.map(\.key))
        deletions.removeAll { done.contains($0.key) }
        var freed = Set<ModelKey>()
        for slot in batch where slots.deleted(slot) { freed.insert(slot.model) }
        for model in freed.sorted() { capacityFreed(model) }
        sendDeletions()
        if !behindDeletions.isEmpty {
            let waiting = behindDeletions
            behindDeletions.removeAll()
            send(claims: waiting, unclaims: [])
        }
    }
}
