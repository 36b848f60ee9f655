/// The growable byte storage under `JSONWriter`: a pointer, a count and a capacity, and
/// appends that are a bounds check and a `memcpy`. `Array.append` costs several times that
/// (uniqueness, capacity and generic checks on each call), and a message is dozens of appends.
///
/// Its fields opt out of dynamic exclusivity checks (a runtime call on every access of a class
/// property): a buffer belongs to one writer on one thread, and the writer's copy-on-write
/// keeps it that way.
@usableFromInline
final class ByteBuffer {
    @usableFromInline @exclusivity(unchecked) var pointer: UnsafeMutablePointer<UInt8>
    @usableFromInline @exclusivity(unchecked) var count = 0
    @usableFromInline @exclusivity(unchecked) var capacity: Int

    @usableFromInline
    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        pointer = .allocate(capacity: self.capacity)
    }

    deinit { pointer.deallocate() }

    /// A copy (for copy-on-write).
    @usableFromInline
    func copy() -> ByteBuffer {
        let other = ByteBuffer(capacity: capacity)
        other.append(UnsafeRawBufferPointer(start: pointer, count: count))
        return other
    }

    @inlinable @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    @usableFromInline
    func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        bigger.update(from: pointer, count: count)
        pointer.deallocate()
        pointer = bigger
        capacity = newCapacity
    }

    @inlinable @inline(__always)
    func append(_ byte: UInt8) {
        reserve(1)
        pointer[count] = byte
        count += 1
    }

    @inlinable @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        let source = base.assumingMemoryBound(to: UInt8.self)
        if bytes.count <= 16 {
            // Keys and small values: a loop beats a call to memcpy.
            for index in 0..<bytes.count { pointer[count + index] = source[index] }
        } else {
            (pointer + count).update(from: source, count: bytes.count)
        }
        count += bytes.count
    }

    /// Forgets everything, keeping the memory (or releasing it if it grew past `keeping`).
    @usableFromInline
    func removeAll(keepingCapacityUpTo keeping: Int) {
        count = 0
        if capacity > keeping {
            pointer.deallocate()
            capacity = max(keeping, 16)
            pointer = .allocate(capacity: capacity)
        }
    }

    /// Drops the first `n` bytes (those the kernel took).
    @usableFromInline
    func removeFirst(_ n: Int) {
        precondition(n <= count)
        (pointer).update(from: pointer + n, count: count - n)
        count -= n
    }
}
