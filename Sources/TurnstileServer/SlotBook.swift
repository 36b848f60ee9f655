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

    /// This host's slots, by key.
    private(set) var own: [String: OwnUse] = [:]
    /// The slots this host holds, by the fence of the lease (or claim) they are for.
    private(set) var held: [UInt64: PlacedClaim] = [:]
    /// Every slot as last polled (this host's included), by key.
    private(set) var observed: [String: SlotLayout.Slot] = [:]
    /// The models this host claimed, by name, with their limits: the only ones whose freed
    /// units it reports.
    private(set) var models: [String: (model: ModelKey, limit: Int)] = [:]

    /// An index below `limit` whose slot this host thinks free. Each host starts its search at
    /// its own place (`start`), so hosts claiming at once seldom choose the same slot (a
    /// conflict costs another round trip); the slot prefix is spelled once per search.
    func freeIndex(name: String, limit: Int, layout: SlotLayout) -> Int? {
        guard limit > 0 else { return nil }
        let prefix = layout.slotsPrefix(kind: "models", name: name)
        let first = Int(start % UInt64(limit))
        for step in 0..<limit {
            let index = (first + step) % limit
            let key = prefix + String(index)
            if own[key] == nil && observed[key] == nil { return index }
        }
        return nil
    }

    /// Where this host's searches for a free slot start: a hash of its name (FNV-1a).
    let start: UInt64

    init(host: String) {
        start = host.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
    }

    /// A claim of `model` came from the broker: from now on the polls report its freed units,
    /// whether or not the claim finds a slot (a claim that finds none leaves the model full,
    /// and only a freed unit lifts that).
    mutating func claimed(_ model: ModelKey, limit: Int) {
        models[model.description] = (model, limit)
    }

    mutating func claiming(key: String, fence: UInt64) {
        own[key] = .claiming(fence: fence)
    }

    /// Whether this host is deleting a slot of `name` (given back, not yet acknowledged).
    func isDeleting(name: String, layout: SlotLayout) -> Bool {
        let prefix = layout.slotsPrefix(kind: "models", name: name)
        return own.contains { key, use in
            if case .deleting = use { key.hasPrefix(prefix) } else { false }
        }
    }

    /// A claim that did not take: its slot is not this host's.
    mutating func forget(key: String) {
        if case .claiming? = own[key] { own[key] = nil }
    }

    /// A claim that took.
    mutating func took(_ claim: PlacedClaim) {
        own[claim.key] = .held(fence: claim.fence)
        held[claim.fence] = claim
    }

    /// The unit held for `fence` is given back: its slot is to be deleted.
    /// - Returns: the slot, or nil if this host holds none for `fence`.
    mutating func release(fence: UInt64) -> PlacedClaim? {
        guard let claim = held.removeValue(forKey: fence) else { return nil }
        own[claim.key] = .deleting
        return claim
    }

    /// A slot this host found holding a claim of its own that nothing here owns: to delete.
    mutating func orphaned(_ claim: PlacedClaim) {
        own[claim.key] = .deleting
    }

    /// A deletion was acknowledged. - Returns: whether the slot counted as this host's.
    mutating func deleted(key: String) -> Bool {
        observed[key] = nil
        guard case .deleting? = own[key] else { return false }
        own[key] = nil
        return true
    }

    /// The host lease expired: every slot on it is gone. Claims in flight stay (their
    /// transactions will say).
    mutating func leaseExpired() {
        held.removeAll()
        own = own.filter { if case .claiming = $0.value { true } else { false } }
    }

    /// A slot read in a lost claim's transaction.
    mutating func observe(key: String, value: [UInt8], layout: SlotLayout) {
        if let slot = layout.slot(key: key, value: value) {
            observed[key] = slot
        } else {
            // Not a value this layout writes: count the slot as taken all the same.
            observed[key] = .unreadable
        }
    }

    /// Replaces the observed slots with a poll's; returns the models, among those this host
    /// claimed, that have a unit freed since the last poll.
    mutating func replaceObserved(with polled: [String: SlotLayout.Slot]) -> [ModelKey] {
        var freed = Set<ModelKey>()
        for (key, slot) in observed where polled[key] == nil {
            if let model = models[slot.name]?.model { freed.insert(model) }
        }
        observed = polled
        return freed.sorted()
    }

    /// Whether this host's own bookkeeping knows `key` (claiming, holding or deleting it).
    func isOwn(_ key: String) -> Bool { own[key] != nil }

    /// The slots each host holds, per model name, as last polled.
    func useByHost() -> [String: [String: Int]] {
        var use: [String: [String: Int]] = [:]
        for slot in observed.values where slot.index >= 0 {
            use[slot.name, default: [:]][slot.host, default: 0] += 1
        }
        return use
    }
}
