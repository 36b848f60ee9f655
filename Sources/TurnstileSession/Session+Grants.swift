import TurnstileCore
import TurnstileProtocol

/// The grants of the current loop turn that are not yet known to be saved: where their
/// answers and `granted` events sit in connections' output, and which leases they created.
/// If the turn's journal cannot be written they are taken back before a byte of them leaves
/// (PROTOCOL.md, "State and storage"); on the healthy path this is two array appends per grant.
struct UncommittedGrants {
    /// A line in a connection's unsent output.
    struct Mark {
        var client: ClientID
        var range: Range<Int>
        var fence: UInt64
        /// An acquire or unpark answer (rewritten as a refusal), else a watch event (removed).
        var isAnswer: Bool
    }

    var marks: [Mark] = []
    /// Leases created this turn (the other answered fences are unparks).
    var newFences: [UInt64] = []

    var isEmpty: Bool { marks.isEmpty && newFences.isEmpty }

    mutating func removeAll() {
        marks.removeAll(keepingCapacity: true)
        newFences.removeAll(keepingCapacity: true)
    }
}

extension Session {
    /// Queues a granted acquire or unpark answer, remembering where it is until it is saved.
    func sendGrant(to connection: SessionConnection, id: ArraySlice<UInt8>?, _ lease: Lease) {
        let start = connection.output.count
        let validUntil = lease.clusterFence == nil ? nil : validUntilMilliseconds(lease)
        send(to: connection) { Answers.granted(&$0, id: id, lease, validUntilMilliseconds: validUntil) }
        guard connection.output.count > start else { return }
        uncommitted.marks.append(.init(client: connection.id, range: start..<connection.output.count, fence: lease.fence, isAnswer: true))
    }

    /// Sends a `granted` watch event, remembering where it is until the grant is saved.
    func broadcastGrant(_ lease: Lease) {
        uncommitted.newFences.append(lease.fence)
        guard !watchers.isEmpty else { return }
        for connection in watchers.values {
            let start = connection.output.count
            send(to: connection) { Answers.watchLease(&$0, name: "granted", lease) }
            guard connection.output.count > start else { continue }
            uncommitted.marks.append(.init(client: connection.id, range: start..<connection.output.count, fence: lease.fence, isAnswer: false))
        }
    }

    /// The commit wrote the turn's journal: its grants stand, and grants resume if the
    /// state directory had failed.
    public func storageCommitted() {
        if !uncommitted.isEmpty { uncommitted.removeAll() }
        guard storageFailing else { return }
        storageFailing = false
        logger.notice("storage recovered: the state directory takes writes again; grants resume")
    }

    /// The commit could not write the turn's journal: the turn's grants are taken back and
    /// answered `unavailable` with reason `storage` (and so is each waiter dispatched into the
    /// capacity they free), until a later commit succeeds.
    /// - Parameter why: what failed, for the log.
    public func storageFailed(_ why: String) {
        if !storageFailing {
            storageFailing = true
            storageFailures += 1
            logger.error("storage failed: acquires are answered unavailable (storage) until the state directory takes writes again",
                         metadata: ["error": "\(why)"])
        }
        withdrawUncommittedGrants()
    }

    /// Takes back every grant of the failed turn: its answer becomes `unavailable`/`storage`,
    /// its `granted` events are removed, and the broker forgets it (an unpark is parked
    /// again; an unpark answered for a lease that was not parked is parked by this too, which
    /// is what its holder is told). Their records stay in the kept batch, followed by records
    /// that undo them.
    private func withdrawUncommittedGrants() {
        while !uncommitted.isEmpty {
            let batch = uncommitted
            uncommitted.removeAll()
            rewriteOutputs(batch.marks)
            let created = Set(batch.newFences)
            for fence in batch.newFences where take(broker.withdrawGrant(fence: fence, isNew: true, now: now)) {
                outbox.journal.end(fence: fence)
            }
            for mark in batch.marks where mark.isAnswer && !created.contains(mark.fence) {
                take(broker.withdrawGrant(fence: mark.fence, isNew: false, now: now))
            }
            if !batch.newFences.isEmpty { logger.warning("grants withdrawn: they could not be saved", metadata: ["count": "\(created.count)"]) }
            processEffects()
        }
    }

    /// Replaces marked answers with refusals and drops marked events, in each connection's
    /// unsent output (whole lines: output only ever holds complete lines).
    private func rewriteOutputs(_ marks: [UncommittedGrants.Mark]) {
        for (client, marks) in Dictionary(grouping: marks, by: \.client) {
            guard let connection = connections[client], connection.phase != .closing else { continue }
            let sorted = marks.sorted { $0.range.lowerBound < $1.range.lowerBound }
            guard let last = sorted.last, last.range.upperBound <= connection.output.count else { continue }
            let old = connection.output.bytes
            var rebuilt = JSONWriter(capacity: old.count)
            var cursor = 0
            for mark in sorted {
                Self.copyLines(old[cursor..<mark.range.lowerBound], into: &rebuilt)
                if mark.isAnswer { Self.writeStorageRefusal(&rebuilt, id: Self.echoedID(old[mark.range])) }
                cursor = mark.range.upperBound
            }
            Self.copyLines(old[cursor...], into: &rebuilt)
            connection.output = rebuilt
        }
    }

    private static func copyLines(_ lines: ArraySlice<UInt8>, into w: inout JSONWriter) {
        guard let end = lines.last, end == 0x0A else { return }
        w.raw(lines.dropLast())
        w.newline()
    }

    /// The `id` a granted answer echoed: answers start `{"id":<id>,"ok":` (or `{"ok":` without
    /// one), and `,"ok":` cannot occur inside the id (a string's quotes are escaped).
    private static func echoedID(_ answer: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        let prefix = Array(#"{"id":"#.utf8), separator = Array(#","ok":"#.utf8)
        guard answer.starts(with: prefix) else { return nil }
        let body = answer.dropFirst(prefix.count)
        var index = body.startIndex
        while index + separator.count <= body.endIndex {
            if body[index..<index + separator.count].elementsEqual(separator) { return body[body.startIndex..<index] }
            index += 1
        }
        return nil
    }

    /// `{"id":…,"ok":false,"error":"unavailable","message":…,"reason":"storage"}`.
    static func writeStorageRefusal(_ w: inout JSONWriter, id: ArraySlice<UInt8>?) {
        Answers.failure(&w, id: id, code: .unavailable,
                        message: "the grant could not be saved: the state directory does not take writes (disk full or I/O error)",
                        reason: "storage")
    }
}
