/// Which units of one shared limit a host counts as taken (protocol/CLUSTER.md §8): the index
/// the daemon's slot book searches for a free slot, one mark per unit, so a claim's search reads an array
/// instead of spelling and hashing a key per unit it passes (the search ran on every claim and
/// took a third of the loop thread at 64 clients per host).
///
/// It also keeps where this host's searches start. Each host fills slots forward from its start,
/// so hosts whose starts lie close together run into each other's slots: a claim of a slot
/// another host took since the last poll fails (a conflict, one more round trip). After a poll
/// that followed a conflict the start moves into the largest run of units no other host holds,
/// a quarter of the way in, leaving the host behind it room to grow.
public struct SlotOccupancy: Sendable {
    /// Per unit: `own` (claiming, holding or deleting it here) and `observed` (shown by the
    /// last poll or by a lost claim) bits.
    public private(set) var marks: [UInt8]
    /// This host's slots being deleted (given back, not yet acknowledged).
    public var deleting = 0
    /// Where searches start.
    public private(set) var start: Int
    /// A claim of this limit found its slot taken since the last poll.
    public var conflicted = false

    public static let own: UInt8 = 1
    public static let observed: UInt8 = 2

    public init(limit: Int, start: Int) {
        marks = Array(repeating: 0, count: max(limit, 0))
        self.start = limit > 0 ? start % limit : 0
    }

    public var limit: Int { marks.count }

    /// Sets or clears `bit` of unit `index`; indices outside the limit are not searched, so
    /// they are not kept (a key written by hand with a huge index costs nothing).
    public mutating func mark(_ index: Int, _ bit: UInt8, _ on: Bool) {
        guard index >= 0, index < marks.count else { return }
        if on { marks[index] |= bit } else { marks[index] &= ~bit }
    }

    public mutating func clearObserved() {
        for index in marks.indices { marks[index] &= ~Self.observed }
    }

    /// The first unit at or after the start (going round) that nothing marks; nil if none.
    public func freeIndex() -> Int? {
        let limit = marks.count
        guard limit > 0 else { return nil }
        var index = start
        for _ in 0..<limit {
            if marks[index] == 0 { return index }
            index += 1
            if index == limit { index = 0 }
        }
        return nil
    }

    /// Moves the start into the largest run of units that no other host holds (`others`: one
    /// flag per unit), a quarter of the way in. Nothing moves when every unit is another's.
    public mutating func moveStart(awayFrom others: [Bool]) {
        let limit = marks.count
        guard limit > 0, others.count == limit, let anchor = others.firstIndex(of: true) else { return }
        // Walk once round from a unit another host holds, so no run is cut at the array's end.
        var best = (begin: 0, length: 0)
        var run = (begin: 0, length: 0)
        for step in 1...limit {
            let index = (anchor + step) % limit
            if others[index] {
                if run.length > best.length { best = run }
                run = (0, 0)
            } else {
                if run.length == 0 { run.begin = index }
                run.length += 1
            }
        }
        guard best.length > 0 else { return }
        start = (best.begin + best.length / 4) % limit
    }
}
