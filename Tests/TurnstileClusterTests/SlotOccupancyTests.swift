import Testing
import TurnstileCluster

/// The index a host searches for a free slot, and where its searches start (SlotOccupancy).
@Suite("Slot occupancy")
struct SlotOccupancyTests {
    @Test func theSearchStartsAtTheStartGoesRoundAndSkipsEveryMarkedUnit() {
        var units = SlotOccupancy(limit: 5, start: 13)
        #expect(units.start == 3, "the start is taken modulo the limit")
        #expect(units.freeIndex() == 3)
        units.mark(3, SlotOccupancy.own, true)
        units.mark(4, SlotOccupancy.observed, true)
        #expect(units.freeIndex() == 0, "past the end the search goes round")
        for index in 0..<3 { units.mark(index, SlotOccupancy.observed, true) }
        #expect(units.freeIndex() == nil, "every unit taken")
        units.mark(4, SlotOccupancy.observed, false)
        #expect(units.freeIndex() == 4)
        units.mark(4, SlotOccupancy.own, true)
        units.clearObserved()
        #expect(units.freeIndex() == 0, "clearing what a poll showed keeps this host's own marks")
        #expect(units.marks == [0, 0, 0, SlotOccupancy.own, SlotOccupancy.own])
    }

    @Test func marksOutsideTheLimitAreIgnoredWhateverTheIndex() {
        var units = SlotOccupancy(limit: 2, start: 0)
        units.mark(Int.max, SlotOccupancy.observed, true)
        units.mark(-1, SlotOccupancy.observed, true)
        units.mark(2, SlotOccupancy.own, true)
        #expect(units.marks == [0, 0] && units.freeIndex() == 0)
        #expect(SlotOccupancy(limit: 0, start: 7).freeIndex() == nil)
        #expect(SlotOccupancy(limit: -3, start: 7).limit == 0)
    }

    @Test func aConflictMovesTheStartIntoTheLargestRunNoOtherHostHolds() {
        var units = SlotOccupancy(limit: 20, start: 0)
        var others = Array(repeating: false, count: 20)
        for index in [0, 1, 2, 3, 10, 11] { others[index] = true }
        // Runs not held by others: 4…9 (6 units) and 12…19 (8 units): the start goes a quarter
        // of the way into the larger one.
        units.moveStart(awayFrom: others)
        #expect(units.start == 14)
        // A run that wraps round the end: 18, 19, 0, 1, 2 (5 units) beats 5…7 (3 units).
        for index in others.indices { others[index] = [3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17].contains(index) }
        units.moveStart(awayFrom: others)
        #expect(units.start == 19, "18 + 5/4")
        units.moveStart(awayFrom: Array(repeating: true, count: 20))
        #expect(units.start == 19, "every unit another's: the start stays")
        units.moveStart(awayFrom: Array(repeating: false, count: 20))
        #expect(units.start == 19, "no other host holds any: the start stays")
        units.moveStart(awayFrom: [true])
        #expect(units.start == 19, "flags of another length are ignored")
    }
}
