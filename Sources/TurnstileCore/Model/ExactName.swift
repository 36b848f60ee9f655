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

    /// Equal bytes. Native and small strings are compared through their contiguous UTF-8
    /// (a dictionary lookup on the acquire path does this), others byte by byte.
    public static func == (lhs: ExactName, rhs: ExactName) -> Bool {
        let left = lhs.text.utf8, right = rhs.text.utf8
        guard left.count == right.count else { return false }
        let compared = left.withContiguousStorageIfAvailable { leftBytes in
            right.withContiguousStorageIfAvailable { rightBytes in bytesEqual(leftBytes, rightBytes) }
        }
        return (compared ?? nil) ?? left.elementsEqual(right)
    }

    /// Whether two buffers of one length hold the same bytes, eight at a time: the generic
    /// `elementsEqual` costs about a hundred instructions per name on the acquire path.
    private static func bytesEqual(_ left: UnsafeBufferPointer<UInt8>, _ right: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let leftStart = left.baseAddress, let rightStart = right.baseAddress else { return left.count == right.count }
        let leftRaw = UnsafeRawPointer(leftStart), rightRaw = UnsafeRawPointer(rightStart)
        var offset = 0
        while offset + 8 <= left.count {
            if leftRaw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                != rightRaw.loadUnaligned(fromByteOffset: offset, as: UInt64.self) { return false }
            offset += 8
        }
        while offset < left.count {
            if leftStart[offset] != rightStart[offset] { return false }
            offset += 1
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        let hashed: Void? = text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil {
            for byte in text.utf8 { hasher.combine(byte) }
        }
    }

    /// Byte order of the UTF-8, which is also code point order.
    public static func < (lhs: ExactName, rhs: ExactName) -> Bool {
        lhs.text.utf8.lexicographicallyPrecedes(rhs.text.utf8)
    }

    public var description: String { text }
}
