#if canImport(Glibc)
import Glibc
#endif

/// An etcd lease's ID. A host's daemon holds one lease (its host lease) and attaches every shared
/// claim to it, so the claims vanish when the host stops renewing.
public struct EtcdLeaseID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public var description: String { String(UInt64(bitPattern: rawValue), radix: 16) }
}

/// Which keys a read or a delete covers: one key, or every key that starts with a prefix.
public enum EtcdKeys: Hashable, Sendable {
    case key(String)
    case prefix(String)

    /// etcd's [key, range_end) form: no range_end for one key; for a prefix, the prefix with its
    /// last byte incremented (never 0xff, which UTF-8 does not use); for "", etcd's form of every
    /// key, ["\0", "\0").
    var bounds: (key: [UInt8], rangeEnd: [UInt8]) {
        switch self {
        case .key(let key):
            return (Array(key.utf8), [])
        case .prefix(let prefix):
            var end = Array(prefix.utf8)
            guard let last = end.popLast() else { return ([0], [0]) }
            return (Array(prefix.utf8), end + [last + 1])
        }
    }
}

/// A key as etcd stores it, with the revisions a compare can test.
public struct EtcdKeyValue: Hashable, Sendable {
    public var key: String
    public var value: [UInt8]
    /// The revision of the key's creation: 0 compares equal for a key that does not exist.
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    /// The lease the key is attached to (deleted with it), if any.
    public var lease: EtcdLeaseID?

    public init(key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, version: Int64, lease: EtcdLeaseID?) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    /// The value read as UTF-8.
    public var valueString: String { String(decoding: value, as: UTF8.self) }
}

/// What a read returned, and the store's revision it was read at.
public struct EtcdRangeResult: Hashable, Sendable {
    public var revision: Int64
    public var keyValues: [EtcdKeyValue]
    /// How many keys the range holds (more than `keyValues` when a limit cut it).
    public var count: Int64
    public var more: Bool

    public init(revision: Int64, keyValues: [EtcdKeyValue], count: Int64, more: Bool) {
        self.revision = revision
        self.keyValues = keyValues
        self.count = count
        self.more = more
    }
}

/// What a delete removed.
public struct EtcdDeleteResult: Hashable, Sendable {
    public var revision: Int64
    public var deleted: Int64

    public init(revision: Int64, deleted: Int64) {
        self.revision = revision
        self.deleted = deleted
    }
}

/// A granted lease: the daemon's host lease, which it then renews every third of its TTL.
public struct EtcdLeaseGrant: Hashable, Sendable {
    public var id: EtcdLeaseID
    /// The TTL etcd granted (it may raise a request below its minimum).
    public var ttlSeconds: Int64
    /// When the grant was sent (`EtcdClock.now()`): the lease lives at least until
    /// `sentAt + ttlSeconds`, since etcd starts its TTL after it received the request.
    public var sentAt: UInt64

    public init(id: EtcdLeaseID, ttlSeconds: Int64, sentAt: UInt64) {
        self.id = id
        self.ttlSeconds = ttlSeconds
        self.sentAt = sentAt
    }
}

/// One renewal of a lease. etcd restarts the TTL when it handles the renewal, which is after the
/// client sent it, so `sentAt + ttlSeconds` is a deadline before which the lease (and every key
/// attached to it) is certainly alive, measured on this host's clock alone.
public struct EtcdKeepAlive: Hashable, Sendable {
    public var id: EtcdLeaseID
    public var ttlSeconds: Int64
    /// When the renewal that succeeded was sent, in `EtcdClock.now()` nanoseconds.
    public var sentAt: UInt64
    /// `sentAt + ttlSeconds`: the lease is alive at least until then.
    public var safeUntil: UInt64 { sentAt &+ UInt64(max(ttlSeconds, 0)) &* 1_000_000_000 }

    public init(id: EtcdLeaseID, ttlSeconds: Int64, sentAt: UInt64) {
        self.id = id
        self.ttlSeconds = ttlSeconds
        self.sentAt = sentAt
    }
}

/// A lease's remaining time as etcd reports it.
public struct EtcdLeaseTimeToLive: Hashable, Sendable {
    public var id: EtcdLeaseID
    /// Seconds left; -1 when the lease has expired or never existed.
    public var ttlSeconds: Int64
    public var grantedTTLSeconds: Int64
    /// The keys attached to it.
    public var keys: [String]

    public init(id: EtcdLeaseID, ttlSeconds: Int64, grantedTTLSeconds: Int64, keys: [String]) {
        self.id = id
        self.ttlSeconds = ttlSeconds
        self.grantedTTLSeconds = grantedTTLSeconds
        self.keys = keys
    }
}

/// The monotonic clock that `sentAt` and `safeUntil` are read on: CLOCK_MONOTONIC in
/// nanoseconds, the clock libuv's `uv_hrtime()` reads, so the daemon can compare them with its
/// own loop's time directly.
public enum EtcdClock {
    public static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
