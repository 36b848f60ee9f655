import CLibUV

/// CRC-32C (Castagnoli, the checksum of iSCSI, ext4 metadata and etcd's WAL), to frame journal
/// records: a record whose bytes do not match its checksum was torn or damaged and is dropped
/// on replay, as etcd's WAL and Redis's AOF check theirs. Computed by the CPU's CRC32
/// instruction where there is one (a few hundred bytes per grant and end record: a few dozen
/// instructions instead of a table lookup per byte), by a portable loop elsewhere.
enum CRC32C {
    /// The checksum of `bytes`.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return 0 }
        return turnstile_crc32c(0, base, bytes.count)
    }

    /// The checksum of a byte collection.
    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) { return crc }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }
}
