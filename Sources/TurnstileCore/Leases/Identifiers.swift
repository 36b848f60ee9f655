/// A client connection, as the daemon numbers them. The core never sees sockets: it knows a
/// connection only by this serial, to bind leases to it and to answer its waiting requests.
public struct ClientID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The connection's serial number.
    public var serial: UInt64

    public init(_ serial: UInt64) {
        self.serial = serial
    }

    public static func < (lhs: ClientID, rhs: ClientID) -> Bool { lhs.serial < rhs.serial }

    public var description: String { "client#\(serial)" }
}

/// One request of one connection that may be answered later (a waiting acquire or unpark).
/// The daemon maps it back to the JSON `id` the client sent.
public struct Ticket: Hashable, Sendable, CustomStringConvertible {
    /// The connection that asked.
    public var client: ClientID
    /// The daemon's serial for the request, unique within the connection.
    public var request: UInt64

    public init(client: ClientID, request: UInt64) {
        self.client = client
        self.request = request
    }

    public var description: String { "\(client)/\(request)" }
}

/// A lease's token: 128 random bits, written as 32 lowercase hex digits. It is the capability:
/// whoever holds it may heartbeat, release, attach, park or unpark the lease. It is never shown
/// by `status`, `watch` or the logs.
public struct LeaseToken: Hashable, Sendable, CustomStringConvertible {
    /// High 64 bits.
    public var high: UInt64
    /// Low 64 bits.
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Draws a fresh token from a random source.
    public init<R: RandomNumberGenerator>(using random: inout R) {
        high = random.next()
        low = random.next()
    }

    /// Parses 32 hex digits (either case).
    /// - Returns: nil for anything else.
    public init?(hex: String) {
        var hex = hex
        guard let token = hex.withUTF8({ LeaseToken(hexUTF8: $0) }) else { return nil }
        self = token
    }

    /// Parses 32 hex digits (either case) from UTF-8 bytes.
    /// - Returns: nil for anything else.
    public init?(hexUTF8 bytes: UnsafeBufferPointer<UInt8>) {
        guard bytes.count == 32 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<16 {
            guard let high4 = LeaseToken.nibble(bytes[index]), let low4 = LeaseToken.nibble(bytes[16 + index]) else { return nil }
            high = high << 4 | high4
            low = low << 4 | low4
        }
        self.high = high
        self.low = low
    }

    /// The 32-digit lowercase hex form.
    public var hex: String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            for index in 0..<16 {
                buffer[index] = Self.hexDigit(high >> UInt64(60 - 4 * index))
                buffer[16 + index] = Self.hexDigit(low >> UInt64(60 - 4 * index))
            }
            return 32
        }
    }

    private static func hexDigit(_ value: UInt64) -> UInt8 {
        let nibble = UInt8(truncatingIfNeeded: value & 0xF)
        return nibble < 10 ? nibble &+ 0x30 : nibble &+ 0x57
    }

    /// Redacted, so that a token printed by accident does not leak the capability.
    public var description: String { "lease(…)" }

    private static func nibble(_ byte: UInt8) -> UInt64? {
        switch byte {
        case 48...57: UInt64(byte - 48)
        case 97...102: UInt64(byte - 87)
        case 65...70: UInt64(byte - 55)
        default: nil
        }
    }
}

/// SplitMix64: a tiny, seedable random source. The daemon draws tokens from the system's
/// generator; tests and simulations use this one so that every run can be replayed by seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
