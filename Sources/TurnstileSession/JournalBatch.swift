import TurnstileCore
import TurnstileProtocol

/// One loop turn's journal records (PROTOCOL.md, "State and storage"), for the transport to
/// append to the journal file before any answer of the turn leaves. Each record is one line:
/// eight hex digits of the CRC-32C of its JSON, a space, the JSON. The session writes the
/// line with a placeholder prefix; the transport fills in the checksums as it takes the batch
/// (the CPU's CRC instruction is the machine's business).
public struct JournalBatch {
    /// The framed records.
    public private(set) var lines = JSONWriter(capacity: 4096)
    /// Where each record's line starts.
    public private(set) var starts: [Int] = []

    /// The placeholder prefix, nine bytes.
    public static let prefixLength = 9

    public init() {}

    /// Whether no record is waiting.
    public var isEmpty: Bool { lines.isEmpty }

    /// Empties the batch (its records were taken), keeping up to 1 MiB of capacity.
    public mutating func removeAll() {
        lines.removeAll(keepingCapacityUpTo: 1 << 20)
        starts.removeAll(keepingCapacity: true)
    }

    /// Lets the transport fill in each record's checksum prefix.
    public mutating func withLines<R>(_ body: (UnsafeMutableRawBufferPointer, [Int]) throws -> R) rethrows -> R {
        let starts = starts
        return try lines.withMutableBytes { try body($0, starts) }
    }

    /// Appends one record after its placeholder prefix.
    private mutating func append(_ write: (inout JSONWriter) -> Void) {
        starts.append(lines.count)
        lines.framing("00000000 ")
        write(&lines)
    }

    mutating func grant(_ lease: Lease) { append { JournalRecord.writeLease(&$0, change: false, lease) } }
    mutating func change(_ lease: Lease) { append { JournalRecord.writeLease(&$0, change: true, lease) } }
    mutating func end(fence: UInt64) { append { JournalRecord.writeEnd(&$0, fence: fence) } }
    mutating func breaker(project: String, state: CircuitBreaker.ProjectState) {
        append { JournalRecord.writeBreaker(&$0, project: project, state: state) }
    }
    mutating func throttle(tenant: String, provider: String, until: WallTime) {
        append { JournalRecord.writeThrottle(&$0, tenant: tenant, provider: provider, until: until) }
    }
    mutating func unthrottle(tenant: String, provider: String) {
        append { JournalRecord.writeUnthrottle(&$0, tenant: tenant, provider: provider) }
    }
    mutating func unflag(model: String) { append { JournalRecord.writeUnflag(&$0, model: model) } }
    mutating func record(_ event: CompletionEvent) { append { JournalRecord.writeEvent(&$0, event) } }
}
