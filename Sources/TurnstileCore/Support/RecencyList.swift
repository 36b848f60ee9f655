/// Keys in order of last use, for evicting the least recently used one in O(1).
///
/// Telemetry keeps models and sessions that clients name freely; this is what bounds them
/// without scanning: a doubly linked list threaded through arrays, with a dictionary from key
/// to node. Freed nodes are reused.
struct RecencyList<Key: Hashable & Sendable>: Sendable {
    private var nodes: [Key: Int] = [:]
    private var keys: [Key?] = []
    private var older: [Int] = []
    private var newer: [Int] = []
    private var free: [Int] = []
    /// Least and most recently used nodes (-1: none).
    private var oldest = -1
    private var newest = -1

    var count: Int { nodes.count }

    /// The least recently used key.
    var leastRecent: Key? { oldest >= 0 ? keys[oldest] : nil }

    func contains(_ key: Key) -> Bool { nodes[key] != nil }

    /// Marks `key` as used now, adding it if new.
    mutating func touch(_ key: Key) {
        if let node = nodes[key] {
            guard node != newest else { return }
            unlink(node)
            link(node)
            return
        }
        let node: Int
        if let reused = free.popLast() {
            node = reused
            keys[node] = key
        } else {
            node = keys.count
            keys.append(key)
            older.append(-1)
            newer.append(-1)
        }
        nodes[key] = node
        link(node)
    }

    /// Forgets `key`.
    mutating func remove(_ key: Key) {
        guard let node = nodes.removeValue(forKey: key) else { return }
        unlink(node)
        keys[node] = nil
        free.append(node)
    }

    /// Puts a detached node at the newest end.
    private mutating func link(_ node: Int) {
        older[node] = newest
        newer[node] = -1
        if newest >= 0 { newer[newest] = node } else { oldest = node }
        newest = node
    }

    /// Detaches a node from the list.
    private mutating func unlink(_ node: Int) {
        let before = older[node], after = newer[node]
        if before >= 0 { newer[before] = after } else { oldest = after }
        if after >= 0 { older[after] = before } else { newest = before }
    }
}
