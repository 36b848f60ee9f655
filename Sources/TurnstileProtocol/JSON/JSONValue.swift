/// A parsed JSON value, as the wire protocol needs it: numbers keep their text (so an `id`
/// can be echoed verbatim and integers are read exactly), objects keep member order.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let text) = self { text } else { nil } }
    /// The object, if this is one.
    public var objectValue: JSONObject? { if case .object(let object) = self { object } else { nil } }
    /// The array, if this is one.
    public var arrayValue: [JSONValue]? { if case .array(let array) = self { array } else { nil } }
    /// The boolean, if this is one.
    public var boolValue: Bool? { if case .bool(let flag) = self { flag } else { nil } }
    /// The number, if this is one.
    public var numberValue: JSONNumber? { if case .number(let number) = self { number } else { nil } }
    /// Whether this is `null`.
    public var isNull: Bool { self == .null }

    /// The value's kind.
    public var kind: JSONKind {
        switch self {
        case .null: .null
        case .bool: .bool
        case .number: .number
        case .string: .string
        case .array: .array
        case .object: .object
        }
    }

    /// A short name of the value's type, for error messages ("expected a string, got an array").
    public var typeName: String { kind.typeName }

    /// Whether this is a scalar (anything but an array or object): what an `id` may be.
    public var isScalar: Bool { kind.isScalar }
}

/// A JSON number, kept as its text. Reading it as an integer is exact (no detour through
/// `Double`), which matters for fences and pids.
public struct JSONNumber: Equatable, Sendable, CustomStringConvertible {
    /// The number exactly as written.
    public let text: String

    public init(text: String) {
        self.text = text
    }

    /// The value as a 64-bit integer, if it is written as one (no fraction, no exponent) and fits.
    public var int64: Int64? { Int64(text) }

    /// The value as an unsigned 64-bit integer, if it is written as one and fits.
    public var uint64: UInt64? { UInt64(text) }

    /// The value as a double.
    public var double: Double? { Double(text) }

    public var description: String { text }
}

/// A JSON object with its members in order. Lookups are linear: protocol objects have a
/// handful of keys, and a scan beats hashing at that size. A repeated key: the last wins.
public struct JSONObject: Equatable, Sendable {
    /// The members, in the order written.
    public var members: [(key: String, value: JSONValue)]

    public init(_ members: [(key: String, value: JSONValue)] = []) {
        self.members = members
    }

    /// The value of `key`, if present.
    public subscript(key: String) -> JSONValue? {
        for index in members.indices.reversed() where members[index].key == key { return members[index].value }
        return nil
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
