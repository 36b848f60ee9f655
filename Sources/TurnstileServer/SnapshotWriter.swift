#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TurnstileCore

/// The snapshot file's layout (`state.json`): the broker's saved state and the last journal
/// segment it covers (later segments are replayed over it).
struct StateFile: Encodable {
    var version = 1
    var journalSegment: UInt64
    var state: BrokerSnapshot

    enum CodingKeys: String, CodingKey {
        case version, state
        case journalSegment = "journal_segment"
    }

    /// The file's bytes.
    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}

/// The one way snapshots reach the disk, from the loop or the thread pool: one at a time,
/// and never an older journal segment's snapshot over a newer one (a background snapshot
/// that finishes after the final one at stop is dropped, not renamed over it).
///
/// The snapshot it replaces is kept as `state.json.prev`, and the journal segments after the
/// one that covers stay: if `state.json` is ever found unusable, the previous snapshot and
/// those segments still hold every lease (StateLoader).
final class SnapshotWriter: @unchecked Sendable {
    private let lock = NSLock()
    /// The segment the current `state.json` covers.
    private var newestSegment: UInt64?

    /// Records which segment the snapshot found at start covers (before any write).
    func adopt(segment: UInt64?) {
        lock.lock()
        defer { lock.unlock() }
        newestSegment = segment
    }

    /// Encodes and writes `state` as the snapshot covering journal segments up to `segment`,
    /// keeping the one it replaces as `<path>.prev`.
    /// - Returns: nil if a snapshot of a later segment was already written (nothing was);
    ///   else the segment the kept previous snapshot covers (segments up to it are no longer
    ///   needed by either snapshot), if known.
    func write(_ path: String, _ state: BrokerSnapshot, segment: UInt64) throws -> UInt64?? {
        lock.lock()
        defer { lock.unlock() }
        if let newestSegment, newestSegment > segment { return nil }
        let bytes = try StateFile(journalSegment: segment, state: state).encoded()
        // A crash between the two renames leaves only `.prev`, which the next start reads.
        if rename(path, path + ".prev") != 0 && errno != ENOENT {
            throw StartupError(description: "cannot keep the previous snapshot \(path).prev: \(String(cString: strerror(errno)))")
        }
        try writeAtomically(path, bytes)
        defer { newestSegment = segment }
        return .some(newestSegment)
    }
}

/// A snapshot written on the thread pool. The loop hands it the broker's state as a value (a
/// cheap copy) and the worker encodes and writes it, so a large state never stalls the loop;
/// only its own fields (and the locked writer) are touched there.
final class SnapshotJob: @unchecked Sendable {
    let writer: SnapshotWriter
    let path: String
    let state: BrokerSnapshot
    let segment: UInt64
    var error: String?
    /// Set when written: the segment the kept previous snapshot covers, if known.
    var replaced: UInt64??

    init(writer: SnapshotWriter, path: String, state: BrokerSnapshot, segment: UInt64) {
        self.writer = writer
        self.path = path
        self.state = state
        self.segment = segment
    }

    /// Runs on a worker thread.
    func perform() {
        do {
            replaced = try writer.write(path, state, segment: segment)
        } catch {
            self.error = "\(error)"
        }
    }
}

/// Writes every byte to `fd`, retrying short writes and EINTR.
/// - Returns: how many bytes were written, and why it stopped early (nil if it did not).
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> (written: Int, failure: String?) {
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            return (offset, String(cString: strerror(errno)))
        }
        offset += written
    }
    return (offset, nil)
}

/// Writes a file atomically and durably: temp file, write, fsync, rename, fsync the directory.
/// A temp file left by a failure is removed; one left by a crash is removed at the next start
/// (`StateStore.removeLeftovers`).
func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
    // A name of its own, so two writers of one file never share a temporary.
    let temporary = path + ".tmp-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw StartupError(description: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
    var failure = bytes.withUnsafeBytes { writeAll(fd, $0).failure }
    if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
    Glibc.close(fd)
    if let failure {
        unlink(temporary)
        throw StartupError(description: "cannot write \(temporary): \(failure)")
    }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw StartupError(description: "cannot rename \(temporary): \(reason)")
    }
    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    let dirFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dirFD >= 0 {
        fsync(dirFD)
        Glibc.close(dirFD)
    }
}
