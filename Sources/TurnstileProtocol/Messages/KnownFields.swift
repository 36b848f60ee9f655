/// The field names an op takes, each with its length and first eight bytes as one word, so
/// that checking a request's keys against them (every request does) is a few integer
/// compares per key.
public struct KnownFields: Sendable {
    @usableFromInline let entries: [(count: Int, prefix: UInt64, name: StaticString)]

    public init(_ names: [StaticString]) {
        entries = names.map { name in
            let bytes = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
            return (bytes.count, JSONObjectView.prefix(bytes), name)
        }
    }

    @usableFromInline static let op = KnownFields.prefix("op"), id = KnownFields.prefix("id")

    private static func prefix(_ name: StaticString) -> UInt64 {
        JSONObjectView.prefix(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    /// Whether `key` (whose first-eight-bytes word is `prefix`) is one of the names, or, at the
    /// top level, `op` or `id`.
    @inlinable
    public func contains(_ key: UnsafeBufferPointer<UInt8>, prefix: UInt64, topLevel: Bool) -> Bool {
        if topLevel && key.count == 2 && (prefix == Self.op || prefix == Self.id) { return true }
        for entry in entries where entry.count == key.count && entry.prefix == prefix {
            if key.count <= 8 { return true }
            let name = UnsafeBufferPointer(start: entry.name.utf8Start, count: entry.name.utf8CodeUnitCount)
            var index = 8
            while index < key.count && key[index] == name[index] { index += 1 }
            if index == key.count { return true }
        }
        return false
    }
}
