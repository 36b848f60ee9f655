/// A min-heap of (deadline, id) pairs: the broker's source for "what happens next".
///
/// Entries are lower bounds, never removed eagerly: a heartbeat that pushes a lease's deadline
/// back leaves the old entry in place, and the broker, on popping it, re-checks the lease and
/// re-pushes its current deadline. Heartbeats stay O(1) and expiry O(log n).
struct DeadlineHeap: Sendable {
    private(set) var entries: [(at: Instant, id: UInt64)] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// The earliest entry.
    var min: (at: Instant, id: UInt64)? { entries.first }

    mutating func push(_ at: Instant, _ id: UInt64) {
        entries.append((at, id))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if entries[parent].at <= entries[child].at { break }
            entries.swapAt(parent, child)
            child = parent
        }
    }

    @discardableResult
    mutating func popMin() -> (at: Instant, id: UInt64)? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let top = entries.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < entries.count && entries[left].at < entries[smallest].at { smallest = left }
            if right < entries.count && entries[right].at < entries[smallest].at { smallest = right }
            if smallest == parent { break }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }

    /// Rebuilds the heap from the entries still wanted, when stale ones pile up.
    mutating func rebuild(keeping wanted: (UInt64) -> Instant?) {
        let live = entries.compactMap { entry in wanted(entry.id).map { ($0, entry.id) } }
        var unique: [UInt64: Instant] = [:]
        for (at, id) in live { unique[id] = at }
        entries.removeAll(keepingCapacity: true)
        for (id, at) in unique { push(at, id) }
    }
}
