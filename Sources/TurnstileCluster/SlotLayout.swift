/// The keys and values of shared units in etcd (protocol/CLUSTER.md §2): one key per unit held,
/// `<prefix>slots/<kind>/<name>/<index>`, whose value says which host holds it for which of its
/// leases, `{"host":"<host>","fence":<fence>}`. Every daemon of a fleet reads and writes them,
/// so their spelling is the fleet's contract; this type is its one writer and reader.
public struct SlotLayout: Sendable, Equatable {
    /// The fleet's prefix, ending with `/`.
    public let prefix: String
    /// This host's name, written into the slots it takes.
    public let host: String

    public init(prefix: String, host: String) {
        self.prefix = prefix
        self.host = host
    }

    /// Where every slot of every kind lives: the range the daemon polls.
    public var slotsPrefix: String { prefix + "slots/" }

    /// The prefix of the slots of one limit (`kind` is `models`, `projects` or `pools`).
    public func slotsPrefix(kind: String, name: String) -> String {
        slotsPrefix + kind + "/" + Self.encode(name) + "/"
    }

    /// The key of unit `index` of a limit.
    public func slotKey(kind: String, name: String, index: Int) -> String {
        slotsPrefix(kind: kind, name: name) + String(index)
    }

    /// Where the agreed values of shared limits live: `limits/<kind>/<name>`.
    public var limitsPrefix: String { prefix + "limits/" }

    /// The key holding a shared limit's value, which every daemon of the fleet must agree on.
    public func limitKey(kind: String, name: String) -> String {
        limitsPrefix + kind + "/" + Self.encode(name)
    }

    /// The kind and name a limit key names; nil for a key outside them.
    public func limitName(key: String) -> (kind: String, name: String)? {
        Self.segments(of: key, after: limitsPrefix, count: 2).map { ($0[0], $0[1]) }
    }

    /// Where the waiters' tickets live: `tickets/<kind>/<name>/<host>/<waiter>`, one per request
    /// of a host waiting for a unit of the limit (protocol/CLUSTER.md §4).
    public var ticketsPrefix: String { prefix + "tickets/" }

    /// The key of this host's ticket for `waiter` (the host's own name for the request).
    public func ticketKey(kind: String, name: String, waiter: String) -> String {
        ticketsPrefix + kind + "/" + Self.encode(name) + "/" + Self.encode(host) + "/" + Self.encode(waiter)
    }

    /// A ticket's value: the priority of its waiter (protocol/CLUSTER.md §4; 0 unless
    /// `fairness = "priority"`).
    public static func ticketValue(priority: Int) -> [UInt8] { Array("{\"priority\":\(priority)}".utf8) }

    /// A ticket value's priority; 0 (the default priority) for a value `ticketValue` does not
    /// write, an empty one included.
    public static func ticketPriority(_ value: [UInt8]) -> Int {
        let text = String(decoding: value, as: UTF8.self)
        let head = "{\"priority\":"
        guard text.hasPrefix(head), text.hasSuffix("}") else { return 0 }
        return Int(text.dropFirst(head.count).dropLast()) ?? 0
    }

    /// The limit, host and waiter of a ticket key; nil for a key outside them.
    public func ticket(key: String) -> (kind: String, name: String, host: String, waiter: String)? {
        Self.segments(of: key, after: ticketsPrefix, count: 4).map { ($0[0], $0[1], $0[2], $0[3]) }
    }

    /// Where the shared throttles live: `throttles/<tenant>/<provider>`.
    public var throttlesPrefix: String { prefix + "throttles/" }
    /// Where the shared subscription-limit flags live: `flags/<model>`.
    public var flagsPrefix: String { prefix + "flags/" }

    public func throttleKey(tenant: String, provider: String) -> String {
        throttlesPrefix + Self.encode(tenant) + "/" + Self.encode(provider)
    }

    public func flagKey(model: String) -> String { flagsPrefix + Self.encode(model) }

    /// A throttle's or flag's value: when it ends, on the Unix clock (hosts of a fleet keep
    /// their clocks in step; a throttle is a provider's hint, and its key's own lease bounds it).
    public static func controlValue(untilUnixMilliseconds: Int64) -> [UInt8] {
        Array("{\"until_unix_ms\":\(untilUnixMilliseconds)}".utf8)
    }

    public static func controlEnd(_ value: [UInt8]) -> Int64? {
        let text = String(decoding: value, as: UTF8.self)
        let head = "{\"until_unix_ms\":"
        guard text.hasPrefix(head), text.hasSuffix("}") else { return nil }
        let digits = text.dropFirst(head.count).dropLast()
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(digits)
    }

    /// The tenant and provider of a throttle key, or the model of a flag key; nil for a key
    /// outside them.
    public func control(key: String) -> (tenant: String, provider: String)? {
        Self.segments(of: key, after: throttlesPrefix, count: 2).map { ($0[0], $0[1]) }
    }

    public func flaggedModel(key: String) -> String? {
        Self.segments(of: key, after: flagsPrefix, count: 1)?[0]
    }

    /// Where the shared pauses live: `pauses/<project>`, without a lease.
    public var pausesPrefix: String { prefix + "pauses/" }

    public func pauseKey(project: String) -> String { pausesPrefix + Self.encode(project) }

    /// The project of a pause key; nil for a key outside them.
    public func pausedProject(key: String) -> String? {
        Self.segments(of: key, after: pausesPrefix, count: 1)?[0]
    }

    /// The key of this host's registration (on the host lease).
    public var hostKey: String { prefix + "hosts/" + host }

    /// The value this host writes into a slot it takes for the lease with `fence`.
    public func slotValue(fence: UInt64) -> [UInt8] {
        Array("{\"host\":\"\(Self.escape(host))\",\"fence\":\(fence)}".utf8)
    }

    /// One slot as read back: the limit it belongs to, its index and its holder.
    public struct Slot: Sendable, Equatable {
        public var kind: String
        /// The limit's name, decoded.
        public var name: String
        public var index: Int
        public var host: String
        public var fence: UInt64

        /// A key under the slots whose value this layout never writes: counted as taken, by
        /// no one this host can name.
        public static let unreadable = Slot(kind: "", name: "", index: -1, host: "", fence: 0)
    }

    /// Reads a slot's key and value; nil for a key outside the layout or a value this layout
    /// never writes (another program's keys under the prefix are not ours to interpret).
    public func slot(key: String, value: [UInt8]) -> Slot? {
        guard let unit = unit(key: key), let holder = Self.holder(value) else { return nil }
        return Slot(kind: unit.kind, name: unit.name, index: unit.index, host: holder.host, fence: holder.fence)
    }

    /// A slot as a poll or a lost claim shows it: read as `slot` does, or, for a value this
    /// layout never writes, still taken: the unit its key names, held by no host this layout can
    /// name (`host` empty), or `Slot.unreadable` when the key names no unit either.
    public func takenSlot(key: String, value: [UInt8]) -> Slot {
        if let slot = slot(key: key, value: value) { return slot }
        guard let unit = unit(key: key) else { return .unreadable }
        return Slot(kind: unit.kind, name: unit.name, index: unit.index, host: "", fence: 0)
    }

    /// The limit and unit a slot key names; nil for a key outside the layout.
    func unit(key: String) -> (kind: String, name: String, index: Int)? {
        guard let parts = Self.segments(of: key, after: slotsPrefix, count: 3),
              let index = Int(parts[2]), index >= 0, String(index) == parts[2]
        else { return nil }
        return (parts[0], parts[1], index)
    }

    /// The segments of `key` after `prefix`, decoded: exactly `count` of them, none empty; nil
    /// for a key outside `prefix` or of another shape (one every key reader of the layout
    /// shares, so no reader accepts what another would refuse).
    static func segments(of key: String, after prefix: String, count: Int) -> [String]? {
        guard key.hasPrefix(prefix) else { return nil }
        let parts = key.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == count else { return nil }
        var decoded: [String] = []
        decoded.reserveCapacity(count)
        for part in parts {
            guard let text = decode(part), !text.isEmpty else { return nil }
            decoded.append(text)
        }
        return decoded
    }

    /// Parses `{"host":"<host>","fence":<digits>}` exactly as `slotValue` writes it.
    static func holder(_ value: [UInt8]) -> (host: String, fence: UInt64)? {
        let text = String(decoding: value, as: UTF8.self)
        let head = "{\"host\":\"", middle = "\",\"fence\":"
        guard text.hasPrefix(head), text.hasSuffix("}") else { return nil }
        let body = text.dropFirst(head.count).dropLast()
        guard let split = body.firstRange(of: middle) else { return nil }
        let host = unescape(body[..<split.lowerBound])
        let digits = body[split.upperBound...]
        guard let host, !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let fence = UInt64(digits)
        else { return nil }
        return (host, fence)
    }

    /// A name as one key segment: `%` and `/` percent-encoded, every other byte as is, so two
    /// names never share a key and the key reads as the name.
    static func encode(_ name: String) -> String {
        var out = ""
        for character in name.unicodeScalars {
            switch character {
            case "%": out += "%25"
            case "/": out += "%2F"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// `encode`'s inverse; nil for a `%` not followed by `25` or `2F`.
    static func decode(_ segment: Substring) -> String? {
        var out = ""
        var rest = segment[...]
        while let percent = rest.firstIndex(of: "%") {
            out += rest[..<percent]
            let code = rest[percent...].prefix(3)
            switch code {
            case "%25": out += "%"
            case "%2F": out += "/"
            default: return nil
            }
            rest = rest[percent...].dropFirst(3)
        }
        return out + rest
    }

    /// A host name inside the JSON string of a slot value. Host names are labels (letters,
    /// digits, `.`, `_`, `-`; the config refuses others), so only `"` and `\` could need it.
    private static func escape(_ host: String) -> String {
        host.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
    }

    private static func unescape(_ text: Substring) -> String? {
        var out = ""
        var escaped = false
        for character in text {
            if escaped {
                guard character == "\\" || character == "\"" else { return nil }
                out.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                return nil
            } else {
                out.append(character)
            }
        }
        return escaped ? nil : out
    }
}

extension String {
    /// Every occurrence of `target` replaced (without Foundation).
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard contains(target) else { return self }
        return split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
