/// Appends JSON to a byte buffer, for answers, events and journal lines. It writes exactly
/// what it is told, in order (so output is deterministic), escapes strings as RFC 8259
/// requires and no more (no `\/`), and writes non-finite doubles as `null`.
///
/// Commas are the caller's job only in the sense of calling `member`/`element` for each
/// entry; the writer inserts them.
public struct JSONWriter {
    @usableFromInline var buffer: ByteBuffer
    @usableFromInline var needsComma = false

    public init(capacity: Int = 256) {
        buffer = ByteBuffer(capacity: capacity)
    }

    /// The bytes written so far (a copy; the hot paths use `withBytes`).
    public var bytes: [UInt8] {
        Array(UnsafeBufferPointer(start: buffer.pointer, count: buffer.count))
    }

    /// How many bytes are written.
    public var count: Int { buffer.count }

    /// Whether nothing is written.
    public var isEmpty: Bool { buffer.count == 0 }

    /// Reads the bytes written so far without copying them.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count))
    }

    /// Drops the first `n` bytes (those a socket took).
    public mutating func removeFirst(_ n: Int) {
        unique()
        buffer.removeFirst(n)
    }

    /// Empties the buffer, keeping up to `keeping` bytes of capacity.
    public mutating func removeAll(keepingCapacityUpTo keeping: Int) {
        unique()
        buffer.removeAll(keepingCapacityUpTo: keeping)
        needsComma = false
    }

    /// Copy-on-write: a writer copied and then written to does not change the original.
    @inlinable @inline(__always)
    mutating func unique() {
        if !isKnownUniquelyReferenced(&buffer) { buffer = buffer.copy() }
    }

    /// Empties the buffer, keeping its capacity.
    public mutating func removeAll() {
        unique()
        buffer.removeAll(keepingCapacityUpTo: Int.max)
        needsComma = false
    }

    /// Starts an object (as a value, or as the document).
    @inlinable
    public mutating func beginObject() {
        comma()
        buffer.append(UInt8(ascii: "{"))
        needsComma = false
    }

    /// Ends an object.
    @inlinable
    public mutating func endObject() {
        unique()
        buffer.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Starts an array.
    @inlinable
    public mutating func beginArray() {
        comma()
        buffer.append(UInt8(ascii: "["))
        needsComma = false
    }

    /// Ends an array.
    @inlinable
    public mutating func endArray() {
        unique()
        buffer.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes a member name; the next value written is its value. (The commonest call in every
    /// answer: one capacity check, then plain stores.)
    @inlinable
    public mutating func key(_ name: StaticString) {
        unique()
        let length = name.utf8CodeUnitCount
        buffer.reserve(length + 4)
        var tail = buffer.pointer + buffer.count
        if needsComma {
            tail.pointee = UInt8(ascii: ",")
            tail += 1
        }
        tail.pointee = UInt8(ascii: "\"")
        let source = name.utf8Start
        for index in 0..<length { tail[1 + index] = source[index] }
        tail[length + 1] = UInt8(ascii: "\"")
        tail[length + 2] = UInt8(ascii: ":")
        buffer.count = tail + length + 3 - buffer.pointer
        needsComma = false
    }

    /// Appends a compile-time string's bytes (no allocation).
    @inlinable
    mutating func appendStatic(_ text: StaticString) {
        buffer.append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Writes a member name given at run time (map keys). Named apart from `key(_:)`: a
    /// literal would otherwise pick this slower overload, `String` being its default type.
    public mutating func dynamicKey(_ name: String) {
        string(name)
        buffer.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes a string value. Text that needs no escaping (the usual case) is checked eight
    /// bytes at a time and copied in one go.
    @inlinable
    public mutating func string(_ text: String) {
        comma()
        buffer.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            if let first = JSONWriter.firstEscape(utf8) {
                appendEscaping(utf8, from: first)
            } else {
                buffer.append(UnsafeRawBufferPointer(utf8))
            }
        }
        buffer.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// Writes a lease token's 32 hex digits as a string, with no intermediate `String`.
    @inlinable
    public mutating func hexString(high: UInt64, low: UInt64) {
        comma()
        buffer.reserve(34)
        let tail = buffer.pointer + buffer.count
        tail[0] = UInt8(ascii: "\"")
        JSONWriter.storeHex(high, at: tail + 1)
        JSONWriter.storeHex(low, at: tail + 17)
        tail[33] = UInt8(ascii: "\"")
        buffer.count += 34
        needsComma = true
    }

    /// Stores sixteen lowercase hex digits of a word.
    @inlinable @inline(__always)
    static func storeHex(_ word: UInt64, at target: UnsafeMutablePointer<UInt8>) {
        for index in 0..<16 {
            let nibble = UInt8(truncatingIfNeeded: word >> UInt64(60 - 4 * index)) & 0xF
            target[index] = nibble < 10 ? nibble &+ 0x30 : nibble &+ 0x57
        }
    }

    /// The index of the first byte JSON requires escaping (`"`, `\\`, below 0x20), or nil.
    /// Eight bytes at a time: a word has such a byte when one of three SWAR tests fires.
    @inlinable
    static func firstEscape(_ utf8: UnsafeBufferPointer<UInt8>) -> Int? {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var index = 0
        if let base = utf8.baseAddress {
            let raw = UnsafeRawPointer(base)
            while index + 8 <= utf8.count {
                let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                let control = (word &- ones &* 0x20) & ~word & highs
                let quote = word ^ (ones &* 0x22)
                let backslash = word ^ (ones &* 0x5C)
                let found = control | ((quote &- ones) & ~quote & highs) | ((backslash &- ones) & ~backslash & highs)
                if found != 0 { break }
                index += 8
            }
        }
        while index < utf8.count {
            let byte = utf8[index]
            if byte < 0x20 || byte == 0x22 || byte == 0x5C { return index }
            index += 1
        }
        return nil
    }

    /// The slow path: copies runs between escapes.
    @usableFromInline
    mutating func appendEscaping(_ utf8: UnsafeBufferPointer<UInt8>, from first: Int) {
        buffer.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[..<first])))
        var runStart = first
        var index = first
        while index < utf8.count {
            let byte = utf8[index]
            if byte < 0x20 || byte == 0x22 || byte == 0x5C {
                if index > runStart {
                    buffer.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[runStart..<index])))
                }
                appendEscape(byte)
                runStart = index + 1
            }
            index += 1
        }
        if runStart < utf8.count {
            buffer.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[runStart...])))
        }
    }

    @usableFromInline
    mutating func appendEscape(_ byte: UInt8) {
        buffer.append(UInt8(ascii: "\\"))
        switch byte {
        case 0x22: buffer.append(0x22)
        case 0x5C: buffer.append(0x5C)
        case 0x0A: buffer.append(UInt8(ascii: "n"))
        case 0x0D: buffer.append(UInt8(ascii: "r"))
        case 0x09: buffer.append(UInt8(ascii: "t"))
        case 0x08: buffer.append(UInt8(ascii: "b"))
        case 0x0C: buffer.append(UInt8(ascii: "f"))
        default:
            let hex = Array("0123456789abcdef".utf8)
            for escaped in [UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]] { buffer.append(escaped) }
        }
    }

    /// Writes an integer.
    public mutating func int<T: BinaryInteger>(_ value: T) {
        if let small = Int64(exactly: value) {
            int(small)
        } else {
            unsigned(UInt64(truncatingIfNeeded: value))
        }
    }

    /// Writes an integer (the common case, without generic arithmetic).
    @inlinable
    public mutating func int(_ value: Int) {
        int(Int64(value))
    }

    /// Writes an integer (the common case, without generic arithmetic).
    @inlinable
    public mutating func int(_ value: Int64) {
        if value < 0 {
            comma()
            buffer.append(UInt8(ascii: "-"))
            appendDigits(value.magnitude)
            needsComma = true
        } else {
            unsigned(UInt64(value))
        }
    }

    /// Writes an unsigned integer.
    @inlinable
    public mutating func int(_ value: UInt64) {
        unsigned(value)
    }

    @inlinable
    mutating func unsigned(_ value: UInt64) {
        comma()
        appendDigits(value)
        needsComma = true
    }

    /// Appends the decimal digits of `value`, stored back to front straight into the buffer.
    @inlinable
    mutating func appendDigits(_ value: UInt64) {
        var length = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            length += 1
        }
        buffer.reserve(length)
        let tail = buffer.pointer + buffer.count
        rest = value
        var position = length
        repeat {
            position -= 1
            tail[position] = UInt8(truncatingIfNeeded: rest % 10) &+ 0x30
            rest /= 10
        } while rest > 0
        buffer.count += length
    }

    /// Writes a double in its shortest round-tripping form; non-finite values become `null`.
    public mutating func double(_ value: Double) {
        guard value.isFinite else { return null() }
        if value == value.rounded(), abs(value) < 1e15 {
            int(Int64(value))
            return
        }
        comma()
        appendUTF8("\(value)")
        needsComma = true
    }

    /// Writes a boolean.
    @inlinable
    public mutating func bool(_ value: Bool) {
        comma()
        appendStatic(value ? "true" : "false")
        needsComma = true
    }

    /// Writes `null`.
    @inlinable
    public mutating func null() {
        comma()
        appendStatic("null")
        needsComma = true
    }

    /// Writes already-encoded JSON (an echoed `id`).
    public mutating func raw<C: Collection>(_ json: C) where C.Element == UInt8 {
        comma()
        if json.withContiguousStorageIfAvailable({ buffer.append(UnsafeRawBufferPointer($0)) }) == nil {
            for byte in json { buffer.append(byte) }
        }
        needsComma = true
    }

    /// Appends a run-time string's UTF-8 as is.
    private mutating func appendUTF8(_ text: String) {
        var text = text
        text.withUTF8 { buffer.append(UnsafeRawBufferPointer($0)) }
    }

    /// Writes a string, or `null` for nil.
    public mutating func string(_ text: String?) {
        if let text { string(text) } else { null() }
    }

    /// Writes any parsed value back out.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .number(let number): raw(number.text.utf8)
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let object):
            beginObject()
            for member in object.members {
                dynamicKey(member.key)
                self.value(member.value)
            }
            endObject()
        }
    }

    /// Appends bytes that frame a line rather than belong to its JSON (a journal record's
    /// checksum prefix): the next value starts without a separator.
    public mutating func framing(_ bytes: StaticString) {
        unique()
        buffer.append(UnsafeRawBufferPointer(start: bytes.utf8Start, count: bytes.utf8CodeUnitCount))
        needsComma = false
    }

    /// Appends complete lines written by another writer (a journal batch moved into the one
    /// waiting for the disk).
    public mutating func lines(_ bytes: UnsafeRawBufferPointer) {
        unique()
        buffer.append(bytes)
        needsComma = false
    }

    /// Lets `body` rewrite bytes already written: a framing prefix whose value depends on what
    /// follows it (a checksum), filled in once that is written.
    public mutating func withMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        unique()
        return try body(UnsafeMutableRawBufferPointer(start: buffer.pointer, count: buffer.count))
    }

    /// Ends the line: appends the newline that frames a message.
    @inlinable
    public mutating func newline() {
        unique()
        buffer.append(0x0A)
        needsComma = false
    }

    /// Every write starts here: make the buffer ours, then separate from the previous value.
    @inlinable @inline(__always)
    mutating func comma() {
        unique()
        if needsComma { buffer.append(UInt8(ascii: ",")) }
    }
}
