/// The kind of a JSON value, known from its first byte once the value is checked.
public enum JSONKind: Sendable, Equatable {
    case null, bool, number, string, array, object

    /// As `JSONValue.typeName`: "a string", "an array", … for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Anything but an array or an object (what an `id` may be).
    public var isScalar: Bool { self != .array && self != .object }
}

/// One top-level member of a scanned object, as byte ranges of the line it came from.
public struct JSONMember: Sendable {
    /// The key's bytes, without the quotes.
    public var key: Range<Int>
    /// Whether the key has no escapes (its bytes are then its UTF-8 text).
    public var keyIsPlain: Bool
    /// The key's first eight bytes, zero-padded: most lookups are told apart by it alone.
    public var keyPrefix: UInt64
    /// The value's bytes exactly as written (a string with its quotes).
    public var value: Range<Int>
    public var kind: JSONKind
    /// For a string value: whether it has no escapes.
    public var stringIsPlain: Bool
}

/// A request line's top-level object, checked as JSON in one pass (`JSONParser.scanObject`)
/// but not built: its members are byte ranges, and a value is decoded only when a field is
/// read. The daemon reads a handful of fields per request; building every value as a
/// `JSONValue` (strings, an array of members) and freeing it again cost more than the rest of
/// the request. Valid only while the bytes it was scanned from are.
public struct JSONObjectView {
    /// The whole line.
    public let bytes: UnsafeBufferPointer<UInt8>
    /// The members in the order written.
    public let members: [JSONMember]

    /// One bit per member key (by its length and first byte), so that most lookups of an
    /// absent field, the usual case, end on one test.
    @usableFromInline let keyFilter: UInt64

    public init(bytes: UnsafeBufferPointer<UInt8>, members: [JSONMember]) {
        self.bytes = bytes
        self.members = members
        var filter: UInt64 = 0
        for member in members {
            filter |= member.keyIsPlain ? Self.filterBit(length: member.key.count, first: member.keyPrefix) : ~0
        }
        keyFilter = filter
    }

    @usableFromInline @inline(__always)
    static func filterBit(length: Int, first: UInt64) -> UInt64 {
        1 << ((UInt64(truncatingIfNeeded: length) &* 7 &+ (first & 0xFF)) & 63)
    }

    /// The member named `key`; of a repeated key, the last (as `JSONObject`). The daemon's
    /// lookups: a length check and a byte compare per member, no `String` made.
    @inlinable @inline(__always)
    public func member(_ key: StaticString) -> JSONMember? {
        // Most lookups are of absent fields: one bit test, inlined, ends them.
        let count = key.utf8CodeUnitCount
        guard count > 0 else { return member(named: "") }
        guard keyFilter & Self.filterBit(length: count, first: UInt64(key.utf8Start.pointee)) != 0 else { return nil }
        return searchMember(key)
    }

    /// The members' walk behind `member(_:)`, once the filter says the key may be there.
    @inline(never) @usableFromInline
    func searchMember(_ key: StaticString) -> JSONMember? {
        let wanted = UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        let prefix = Self.prefix(wanted)
        return members.withUnsafeBufferPointer { members in
            var index = members.count
            while index > 0 {
                index -= 1
                let member = members[index]
                if member.keyIsPlain {
                    if member.keyPrefix == prefix && member.key.count == wanted.count
                        && (wanted.count <= 8 || UnsafeBufferPointer(rebasing: bytes[member.key]).elementsEqual(wanted)) {
                        return member
                    }
                } else if decodedKey(member) == key.description {
                    return member
                }
            }
            return nil
        }
    }

    /// The member named `key` given at run time; of a repeated key, the last.
    public func member(named key: String) -> JSONMember? {
        var key = key
        return key.withUTF8 { wanted in
            for member in members.reversed() where member.key.count == wanted.count || !member.keyIsPlain {
                if member.keyIsPlain {
                    if UnsafeBufferPointer(rebasing: bytes[member.key]).elementsEqual(wanted) { return member }
                } else if decodedKey(member) == String(decoding: wanted, as: UTF8.self) {
                    return member
                }
            }
            return nil
        }
    }

    /// The first eight bytes of a key, zero-padded, as one word.
    @inline(__always)
    public static func prefix(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var word: UInt64 = 0
        for index in 0..<min(8, key.count) { word |= UInt64(key[index]) << UInt64(8 * index) }
        return word
    }

    /// The value's bytes as written.
    public func raw(_ member: JSONMember) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: bytes[member.value])
    }

    /// The value, built.
    public func value(_ member: JSONMember) -> JSONValue {
        // The bytes were checked by the scan, so this parse cannot fail.
        (try? JSONParser.parse(raw(member))) ?? .null
    }

    /// A string member's text.
    public func string(_ member: JSONMember) -> String {
        if let plain = plainString(member) { return String(decoding: plain, as: UTF8.self) }
        return value(member).stringValue ?? ""
    }

    /// A string member's UTF-8 bytes, when it has no escapes (no copy).
    public func plainString(_ member: JSONMember) -> UnsafeBufferPointer<UInt8>? {
        guard member.kind == .string, member.stringIsPlain else { return nil }
        return UnsafeBufferPointer(rebasing: bytes[(member.value.lowerBound + 1)..<(member.value.upperBound - 1)])
    }

    /// A number member as its text.
    public func number(_ member: JSONMember) -> JSONNumber {
        JSONNumber(text: String(decoding: raw(member), as: UTF8.self))
    }

    /// A boolean member's value.
    public func bool(_ member: JSONMember) -> Bool { bytes[member.value.lowerBound] == UInt8(ascii: "t") }

    /// A member's key, unescaped.
    public func key(_ member: JSONMember) -> String {
        member.keyIsPlain ? String(decoding: bytes[member.key], as: UTF8.self) : decodedKey(member)
    }

    private func decodedKey(_ member: JSONMember) -> String {
        let quoted = UnsafeBufferPointer(rebasing: bytes[(member.key.lowerBound - 1)..<(member.key.upperBound + 1)])
        return (try? JSONParser.parse(quoted))?.stringValue ?? ""
    }
}

extension JSONParser {
    /// Checks a whole line as JSON and, if it is an object, records its top-level members in
    /// `members` (emptied first; pass the same array each time to reuse its storage).
    /// - Returns: the kind of the top-level value.
    public static func scanObject(_ bytes: UnsafeBufferPointer<UInt8>,
                                  members: inout [JSONMember]) throws(JSONError) -> JSONKind {
        members.removeAll(keepingCapacity: true)
        var parser = JSONParser(bytes)
        parser.skipWhitespace()
        let kind: JSONKind
        if parser.current == UInt8(ascii: "{") {
            try parser.scanMembers(into: &members)
            kind = .object
        } else {
            kind = try parser.skipValue()
        }
        parser.skipWhitespace()
        if parser.position != bytes.count { throw parser.error("unexpected data after the JSON value") }
        return kind
    }

    /// The top-level object: each member's ranges recorded, its value checked and skipped.
    private mutating func scanMembers(into members: inout [JSONMember]) throws(JSONError) {
        try enter()
        position += 1
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
            let keyStart = position + 1
            let keyIsPlain = try skipString()
            let key = keyStart..<(position - 1)
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
            position += 1
            skipWhitespace()
            let start = position
            let isString = current == UInt8(ascii: "\"")
            var stringIsPlain = false
            let kind: JSONKind
            if isString {
                stringIsPlain = try skipString()
                kind = .string
            } else {
                kind = try skipValue()
            }
            let prefix = JSONObjectView.prefix(UnsafeBufferPointer(rebasing: bytes[key]))
            members.append(JSONMember(key: key, keyIsPlain: keyIsPlain, keyPrefix: prefix, value: start..<position,
                                      kind: kind, stringIsPlain: stringIsPlain))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                depth -= 1
                return
            default: throw error("expected ',' or '}' in an object")
            }
        }
    }

    /// Checks one value and moves past it, building nothing.
    mutating func skipValue() throws(JSONError) -> JSONKind {
        guard let byte = current else { throw error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"):
            try skipContainer(close: UInt8(ascii: "}"), members: true)
            return .object
        case UInt8(ascii: "["):
            try skipContainer(close: UInt8(ascii: "]"), members: false)
            return .array
        case UInt8(ascii: "\""): _ = try skipString(); return .string
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try skipNumber(); return .number
        default: throw error(byte >= 0x80 ? "invalid UTF-8 or unexpected character" : "unexpected character '\(Character(Unicode.Scalar(byte)))'")
        }
    }

    /// An object (`members`: each element is `"key": value`) or an array.
    private mutating func skipContainer(close: UInt8, members: Bool) throws(JSONError) {
        try enter()
        position += 1
        skipWhitespace()
        if current == close {
            position += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            if members {
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
                _ = try skipString()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
                position += 1
                skipWhitespace()
            }
            _ = try skipValue()
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case close:
                position += 1
                depth -= 1
                return
            default: throw error(members ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array")
            }
        }
    }

    /// Checks a string (the parser is at its opening quote) and moves past its closing quote.
    /// - Returns: whether it has no escapes.
    mutating func skipString() throws(JSONError) -> Bool {
        position += 1
        var plain = true
        while true {
            guard position < bytes.count else { throw error("unterminated string") }
            switch bytes[position] {
            case UInt8(ascii: "\""):
                position += 1
                return plain
            case UInt8(ascii: "\\"):
                plain = false
                _ = try decodeEscape()
            case 0..<0x20:
                throw error("control character in a string")
            case 0x80...:
                try skipUTF8Sequence()
            default:
                position += 1
            }
        }
    }
}
