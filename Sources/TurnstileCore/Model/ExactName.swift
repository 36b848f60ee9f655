/// A name compared and hashed byte for byte (its UTF-8), not by Unicode canonical equivalence
/// as Swift's `String` is.
///
/// A project name also names a file in the pause directory, and the file system tells names
/// apart by their bytes: NFC "é" and NFD "e\u{301}" are two files. Keyed by `String`, the
/// broker saw them as one project, so pausing one paused both in the broker but not on disk.
/// The broker keys projects (pauses, caps, occupancy, the breaker, the queue's rotation) by
/// this type, so each spelling is its own project everywhere.
public struct ExactName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The name as the client sent it.
    public let text: String

    public init(_ text: String) {
        self.text = text
    }

    public static func == (lhs: ExactName, rhs: ExactName) -> Bool {
        lhs.text.utf8.elementsEqual(rhs.text.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        let hashed: Void? = text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil {
            for byte in text.utf8 { hasher.combine(byte) }
        }
        hasher.combine(text.utf8.count)
    }

    /// Byte order of the UTF-8, which is also code point order.
    public static func < (lhs: ExactName, rhs: ExactName) -> Bool {
        lhs.text.utf8.lexicographicallyPrecedes(rhs.text.utf8)
    }

    public var description: String { text }
}
