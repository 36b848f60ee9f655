import TurnstileCluster
import TurnstileCore

/// What one host knows of the fleet's slots (protocol/CLUSTER.md §3.2), to choose a free slot
/// of each limit a claim needs without a round trip: its own slots (claimed, held, being deleted), which it
/// knows first-hand, and the other hosts' as the last poll (or a lost claim) showed them.
/// A slot this host thinks free may be taken meanwhile; the claim's transaction decides.
struct SlotBook {
    /// This host's own use of a slot.
    enum OwnUse {
        case claiming(fence: UInt64)
        case held(fence: UInt64)
        case deleting
    }

    /// One of this host's slots: its use, and which unit of which limit it is.
    struct OwnSlot {
        var use: OwnUse
        let limit: SharedLimit
        let index: Int
    }

    /// A slot as last polled: the limit its key names (nil for a kind or name this daemon does
    /// not claim from), which unit, and its holder (empty when its value names none).
    struct SeenSlot {
        let limit: SharedLimit?
        let index: Int
        let host: String
    }

    /// This host's slots, by key.
    private(set) var own: [String: OwnSlot] = [:]
    /// The claims whose slots this host holds, by the fence of the lease (or claim) they are for.
    private(set) var held: [UInt64: PlacedClaim] = [:]
    /// Every slot as last polled (this host's included), by key.
    private(set) var observed: [String: SeenSlot] = [:]
    /// The limits this host claimed, with their values: the only ones whose freed units it
    /// reports.
    private(set) var limits: [SharedLimit: Int] = [:]
    /// Per limit this host claimed, which units it counts as taken (`own` and `observed` as
    /// marks): what the search for a free slot reads.
    private var occupancy: [SharedLimit: SlotOccupancy] = [:]

    /// Where this host's searches for a free slot start until a conflict moves them
    /// (`SlotOccupancy`): a hash of its name (FNV-1a, then mixed, as names differing in their
    /// last letter would otherwise start close together).
    let start: UInt64

    init(host: String) {
        let fnv = host.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
        var mixed = (fnv ^ (fnv >> 33)) &* 0xff51_afd7_ed55_8ccd
        mixed = (mixed ^ (mixed >> 33)) &* 0xc4ce_b9fe_1a85_ec53
        start = mixed ^ (mixed >> 33)
    }

    /// An index below `capacity` whose slot of `limit` this host thinks free; nil if none is.
    func freeIndex(_ limit: SharedLimit, capacity: Int) -> Int? {
        guard let units = occupancy[limit], units.limit == capacity else { return nil }
        return units.freeIndex()
    }

    /// A claim of `limit` came from the broker: from now on the polls report its freed units,
    /// whether or not the claim finds a slot (a claim that finds none leaves the limit full,
    /// and only a freed unit lifts that).
    mutating func claimed(_ limit: SharedLimit, capacity: Int) {
        if limits[limit] == capacity { return }
        limits[limit] = capacity
        // New (or its value changed): its marks are made from what this host knows.
        var units = SlotOccupancy(limit: capacity, start: Int(start % UInt64(max(capacity, 1))))
        for slot in own.values where slot.limit == limit { units.mark(slot.index, SlotOccupancy.own, true) }
        for slot in observed.values where slot.limit == limit { units.mark(slot.index, SlotOccupancy.observed, true) }
        units.deleting = own.values.filter { $0.limit == limit && $0.isDeleting }.count
        occupancy[limit] = units
    }

    mutating func claiming(_ claim: PlacedClaim) {
        for slot in claim.slots { setOwn(slot.key, OwnSlot(use: .claiming(fence: claim.fence), limit: slot.limit, index: slot.index)) }
    }

    /// Whether this host is deleting a slot of `limit` (given back, not yet acknowledged).
    func isDeleting(_ limit: SharedLimit) -> Bool { (occupancy[limit]?.deleting ?? 0) > 0 }

    /// A claim that did not take: its slots are not this host's.
    mutating func forget(_ claim: PlacedClaim) {
        for slot in claim.slots {
            if case .claiming? = own[slot.key]?.use { setOwn(slot.key, nil) }
        }
    }

    /// A claim some of whose slots (`taken`) another host took since the last poll.
    mutating func conflicted(_ claim: PlacedClaim, taken: [SharedLimit]) {
        forget(claim)
        for limit in taken { occupancy[limit]?.conflicted = true }
    }

    /// A claim that took.
    mutating func took(_ claim: PlacedClaim) {
        for slot in claim.slots { setOwn(slot.key, OwnSlot(use: .held(fence: claim.fence), limit: slot.limit, index: slot.index)) }
        held[claim.fence] = claim
    }

    /// The units held for `fence` are given back: their slots are to be deleted.
    /// - Returns: the slots, or nil if this host holds none for `fence`.
    mutating func release(fence: UInt64) -> [PlacedSlot]? {
        guard let claim = held.removeValue(forKey: fence) else { return nil }
        for slot in claim.slots { setOwn(slot.key, OwnSlot(use: .deleting, limit: slot.limit, index: slot.index)) }
        return claim.slots
    }

    /// A slot this host found holding a claim of its own that nothing here owns: to delete.
    mutating func orphaned(_ slot: PlacedSlot) {
        setOwn(slot.key, OwnSlot(use: .deleting, limit: slot.limit, index: slot.index))
    }

    /// A deletion was acknowledged. - Returns: whether the slot counted as this host's.
    mutating func deleted(_ slot: PlacedSlot) -> Bool {
        setObserved(slot.key, nil)
        guard own[slot.key]?.isDeleting == true else { return false }
        setOwn(slot.key, nil)
        return true
    }

    /// The host lease expired: every slot on it is gone. Claims in flight stay (their
    /// transactions will say).
    mutating func leaseExpired() {
        held.removeAll()
        for (key, slot) in own {
            if case .claiming = slot.use { continue }
            setOwn(key, nil)
        }
    }

    /// A slot read in a lost claim's transaction.
    mutating func observe(key: String, value: [UInt8], layout: SlotLayout) {
        setObserved(key, Self.seen(layout.takenSlot(key: key, value: value)))
    }

    /// Replaces the observed slots with a poll's; returns the limits, among those this host
    /// claimed, that have a unit freed since the last poll. A limit whose claims met a conflict
    /// since the last poll moves its search's start away from the other hosts' slots.
    mutating func replaceObserved(with polled: [String: SlotLayout.Slot], host: String) -> [SharedLimit] {
        var freed = Set<SharedLimit>()
        for (key, slot) in observed where polled[key] == nil {
            if let limit = slot.limit, limits[limit] != nil { freed.insert(limit) }
        }
        observed = polled.mapValues(Self.seen)
        for limit in occupancy.keys { occupancy[limit]!.clearObserved() }
        var others: [SharedLimit: [Bool]] = [:]
        for (limit, units) in occupancy where units.conflicted { others[limit] = Array(repeating: false, count: units.limit) }
        for slot in observed.values {
            guard let limit = slot.limit, occupancy[limit] != nil else { continue }
            occupancy[limit]!.mark(slot.index, SlotOccupancy.observed, true)
            if slot.host != host, slot.index < others[limit]?.count ?? 0 { others[limit]![slot.index] = true }
        }
        for (limit, taken) in others {
            occupancy[limit]!.moveStart(awayFrom: taken)
            occupancy[limit]!.conflicted = false
        }
        return freed.sorted()
    }

    /// Whether this host's own bookkeeping knows `key` (claiming, holding or deleting it).
    func isOwn(_ key: String) -> Bool { own[key] != nil }

    /// The slots each host holds, per shared limit, as last polled.
    func useByHost() -> [SharedLimit: [String: Int]] {
        var use: [SharedLimit: [String: Int]] = [:]
        for slot in observed.values where !slot.host.isEmpty {
            guard let limit = slot.limit else { continue }
            use[limit, default: [:]][slot.host, default: 0] += 1
        }
        return use
    }

    /// A polled slot as the book keeps it.
    private static func seen(_ slot: SlotLayout.Slot) -> SeenSlot {
        SeenSlot(limit: slot.index >= 0 ? SharedLimit(kind: slot.kind, name: slot.name) : nil, index: slot.index, host: slot.host)
    }

    /// Changes this host's use of `key`, keeping its limit's marks and deletion count in step.
    private mutating func setOwn(_ key: String, _ slot: OwnSlot?) {
        if let old = own[key] {
            occupancy[old.limit]?.mark(old.index, SlotOccupancy.own, false)
            if old.isDeleting { occupancy[old.limit]?.deleting -= 1 }
        }
        own[key] = slot
        if let slot {
            occupancy[slot.limit]?.mark(slot.index, SlotOccupancy.own, true)
            if slot.isDeleting { occupancy[slot.limit]?.deleting += 1 }
        }
    }

    private mutating func setObserved(_ key: String, _ slot: SeenSlot?) {
        if let old = observed[key], let limit = old.limit { occupancy[limit]?.mark(old.index, SlotOccupancy.observed, false) }
        observed[key] = slot
        if let slot, let limit = slot.limit { occupancy[limit]?.mark(slot.index, SlotOccupancy.observed, true) }
    }
}

extension SlotBook.OwnSlot {
    var isDeleting: Bool {
        if case .deleting = use { true } else { false }
    }
}
