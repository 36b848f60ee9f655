import CLibUV

/// Lease tokens from the kernel's CSPRNG, fetched 4 KiB at a time: the system generator makes
/// one `getrandom` call per 64 bits, two per token, which showed as a third of the daemon's
/// system calls under load. The bytes are the kernel's; only the syscall count changes.
struct KernelRandom: RandomNumberGenerator, Sendable {
    private var words = [UInt64](repeating: 0, count: 512)
    private var position = 512

    mutating func next() -> UInt64 {
        if position == words.count {
            let status = words.withUnsafeMutableBytes { turnstile_random_bytes($0.baseAddress, $0.count) }
            precondition(status == 0, "getrandom failed: \(status)")
            position = 0
        }
        defer { position += 1 }
        return words[position]
    }
}
