import TurnstileCluster
import TurnstileCore

/// What one host knows of the fleet's slots (protocol/CLUSTER.md §3.2), to choose a free slot
/// for each claim without a round trip: its own slots (claimed, held, being deleted), which it
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
        let name: String
        let index: Int
    }

    /// This host's slots, by key.
    private(set) var own: [String: OwnSlot] = [:]
    /// The slots this host holds, by the fence of the lease (or claim) they are for.
    private(set) var held: [UInt64: PlacedClaim] = [:]
    /// Every slot as last polled (this host's included), by key.
    private(set) var observed: [String: SlotLayout.Slot] = [:]
    /// The models this host claimed, by name, with their limits: the only ones whose freed
    /// units it reports.
    private(set) var models: [String: (model: ModelKey, limit: Int)] = [:]
    /// Per model this host claimed, which units it counts as taken (`own` and `observed` as
    /// marks): what the search for a free slot reads.
    private var occupancy: [String: SlotOccupancy] = [:]

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

    /// An index below `limit` whose slot this host thinks free; nil if none is.
    func freeIndex(name: String, limit: Int) -> Int? {
        guard let units = occupancy[name], units.limit == limit else { return nil }
        return units.freeIndex()
    }

    /// A claim of `model` came from the broker: from now on the polls report its freed units,
    /// whether or not the claim finds a slot (a claim that finds none leaves the model full,
    /// and only a freed unit lifts that).
    mutating func claimed(_ model: ModelKey, name: String, limit: Int) {
        if let known = models[name], known.limit == limit { return }
        models[name] = (model, limit)
        // New (or its limit changed): its marks are made from what this host knows.
        var units = SlotOccupancy(limit: limit, start: Int(start % UInt64(max(limit, 1))))
        for slot in own.values where slot.name == name { units.mark(slot.index, SlotOccupancy.own, true) }
        for slot in observed.values where slot.name == name { units.mark(slot.index, SlotOccupancy.observed, true) }
        units.deleting = own.values.filter { $0.name == name && $0.isDeleting }.count
        occupancy[name] = units
    }

    mutating func claiming(_ claim: PlacedClaim) {
        setOwn(claim.key, OwnSlot(use: .claiming(fence: claim.fence), name: claim.name, index: claim.index))
    }

    /// Whether this host is deleting a slot of `name` (given back, not yet acknowledged).
    func isDeleting(name: String) -> Bool { (occupancy[name]?.deleting ?? 0) > 0 }

    /// A claim that did not take: its slot is not this host's.
    mutating func forget(_ claim: PlacedClaim) {
        if case .claiming? = own[claim.key]?.use { setOwn(claim.key, nil) }
    }

    /// A claim whose slot another host took since the last poll.
    mutating func conflicted(_ claim: PlacedClaim) {
        forget(claim)
        occupancy[claim.name]?.conflicted = true
    }

    /// A claim that took.
    mutating func took(_ claim: PlacedClaim) {
        setOwn(claim.key, OwnSlot(use: .held(fence: claim.fence), name: claim.name, index: claim.index))
        held[claim.fence] = claim
    }

    /// The unit held for `fence` is given back: its slot is to be deleted.
    /// - Returns: the slot, or nil if this host holds none for `fence`.
    mutating func release(fence: UInt64) -> PlacedClaim? {
        guard let claim = held.removeValue(forKey: fence) else { return nil }
        setOwn(claim.key, OwnSlot(use: .deleting, name: claim.name, index: claim.index))
        return claim
    }

    /// A slot this host found holding a claim of its own that nothing here owns: to delete.
    mutating func orphaned(_ claim: PlacedClaim) {
        setOwn(claim.key, OwnSlot(use: .deleting, name: claim.name, index: claim.index))
    }

    /// A deletion was acknowledged. - Returns: whether the slot counted as this host's.
    mutating func deleted(_ slot: PlacedClaim) -> Bool {
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
        setObserved(key, layout.takenSlot(key: key, value: value))
    }

    /// Replaces the observed slots with a poll's; returns the models, among those this host
    /// claimed, that have a unit freed since the last poll. A model whose claims met a conflict
    /// since the last poll moves its search's start away from the other hosts' slots.
    mutating func replaceObserved(with polled: [String: SlotLayout.Slot], host: String) -> [ModelKey] {
        var freed = Set<ModelKey>()
        for (key, slot) in observed where polled[key] == nil {
            if let model = models[slot.name]?.model { freed.insert(model) }
        }
        observed = polled
        for name in occupancy.keys { occupancy[name]!.clearObserved() }
        var others: [String: [Bool]] = [:]
        for (name, units) in occupancy where units.conflicted { others[name] = Array(repeating: false, count: units.limit) }
        for slot in polled.values where occupancy[slot.name] != nil {
            occupancy[slot.name]!.mark(slot.index, SlotOccupancy.observed, true)
            if slot.host != host, slot.index < others[slot.name]?.count ?? 0 { others[slot.name]![slot.index] = true }
        }
        for (name, taken) in others {
            occupancy[name]!.moveStart(awayFrom: taken)
            occupancy[name]!.conflicted = false
        }
        return freed.sorted()
    }

    /// Whether this host's own bookkeeping knows `key` (claiming, holding or deleting it).
    func isOwn(_ key: String) -> Bool { own[key] != nil }

    /// The slots each host holds, per model name, as last polled.
    func useByHost() -> [String: [String: Int]] {
        var use: [String: [String: Int]] = [:]
        for slot in observed.values where slot.index >= 0 && !slot.host.isEmpty {
            use[slot.name, default: [:]][slot.host, default: 0] += 1
        }
        return use
    }

    /// Changes this host's use of `key`, keeping its model's marks and deletion count in step.
    private mutating func setOwn(_ key: String, _ slot: OwnSlot?) {
        if let old = own[key] {
            occupancy[old.name]?.mark(old.index, SlotOccupancy.own, false)
            if old.isDeleting { occupancy[old.name]?.deleting -= 1 }
        }
        own[key] = slot
        if let slot {
            occupancy[slot.name]?.mark(slot.index, SlotOccupancy.own, true)
            if slot.isDeleting { occupancy[slot.name]?.deleting += 1 }
        }
    }

    private mutating func setObserved(_ key: String, _ slot: SlotLayout.Slot?) {
        if let old = observed[key] { occupancy[old.name]?.mark(old.index, SlotOccupancy.observed, false) }
        observed[key] = slot
        if let slot { occupancy[slot.name]?.mark(slot.index, SlotOccupancy.observed, true) }
    }
}

extension SlotBook.OwnSlot {
    var isDeleting: Bool {
        if case .deleting = use { true } else { false }
    }
}
