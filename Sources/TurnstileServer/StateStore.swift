#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import Foundation
import Logging
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// The state directory (PROTOCOL.md, "State and storage"): a snapshot (`state.json`), the
/// journal of changes since it (`journal-N.ndjson`, appended before any answer leaves, so a
/// crashed daemon loses no grant it announced), the fence reservation (`fence`, fsynced, so
/// fences keep rising even across a power cut), and the `lock` that makes one daemon its owner.
///
/// Snapshots are written atomically (temp file, fsync, rename, fsync of the directory): at
/// start and stop on the loop, in between on libuv's thread pool when the journal grows or
/// a minute has passed with changes.
///
/// A write that a grant depends on (the journal batch, the fence reservation) that fails puts
/// the store in the failed state (`failure` is set): the batch is kept and `commit` tries it
/// again until it succeeds; meanwhile the server answers no grant as granted.
final class StateStore {
    /// Fences reserved per fsync of the `fence` file.
    static let fenceBlock: UInt64 = 1 << 20
    /// Journal bytes that trigger a snapshot.
    static let journalBytesMax = 8 << 20
    /// Longest time changes wait in the journal before a snapshot.
    static let snapshotIntervalMilliseconds: UInt64 = 60_000
    /// Segment numbers above this (only a damaged or hand-made file has them) are started
    /// again from 1 at start, so that adding to them can never overflow.
    static let segmentNumberMax = UInt64.max / 2

    let directory: String
    private let logger: Logger
    private let lock: StateDirectoryLock
    private let journal = Journal()
    private var fenceReserved: UInt64 = 0
    private var lastSnapshotAt: Instant?
    private var snapshotInFlight = false
    /// Serialises every snapshot write, on the loop or the thread pool.
    private let writer = SnapshotWriter()
    /// Why the last commit failed; nil while the directory takes writes.
    private(set) var failure: String?

    private var snapshotPath: String { directory + "/state.json" }
    private var fencePath: String { directory + "/fence" }
    static func journalPath(_ directory: String, _ number: UInt64) -> String { directory + "/journal-\(number).ndjson" }

    /// Creates the directory (0700) if missing, takes its lock, and removes temporary files
    /// that a killed daemon left. Nothing else in the directory is touched here.
    /// - Throws: a `StartupError` if the directory cannot be made or another daemon owns it.
    init(directory: String, socketPath: String, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        guard makeDirectories(directory, mode: 0o700) else {
            throw StartupError(description: "cannot create the state directory \(directory): \(String(cString: strerror(errno)))")
        }
        lock = try StateDirectoryLock(directory: directory, socketPath: socketPath)
        removeLeftovers()
    }

    /// Temporary files (`*.tmp-*`) of atomic writes a killed daemon did not finish.
    private func removeLeftovers() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.contains(".tmp-") {
            if unlink(directory + "/" + name) == 0 { logger.info("removed a leftover temporary file", metadata: ["file": "\(name)"]) }
        }
    }

    /// The journal segment numbers present, in order.
    static func journalSegments(in directory: String) -> [UInt64] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> UInt64? in
            guard name.hasPrefix("journal-"), name.hasSuffix(".ndjson") else { return nil }
            let digits = name.dropFirst("journal-".count).dropLast(".ndjson".count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return UInt64(digits)
        }.sorted()
    }

    /// Reads the snapshot and replays the journal after it.
    /// - Throws: a `StartupError` if the saved fences cannot keep rising.
    func load(telemetryTTLSeconds: UInt64) throws -> StateLoader.Loaded {
        let loaded = try StateLoader(directory: directory, logger: logger, telemetryTTLSeconds: telemetryTTLSeconds).load()
        if loaded.segment > Self.segmentNumberMax {
            logger.warning("journal segment numbers start again from 1", metadata: ["was": "\(loaded.segment)"])
        }
        journalSegmentAtLoad = loaded.segment
        writer.adopt(segment: loaded.snapshotSegment)
        return loaded
    }

    private var journalSegmentAtLoad: UInt64 = 0

    /// Makes sure fences up to past `highWater` are durably reserved.
    /// - Returns: nil, or why the reservation could not be written.
    private func reserveFences(above highWater: UInt64) -> String? {
        let (half, overflowHalf) = highWater.addingReportingOverflow(Self.fenceBlock / 2)
        guard overflowHalf || half > fenceReserved else { return nil }
        let (reserved, overflow) = highWater.addingReportingOverflow(Self.fenceBlock)
        guard !overflow else { return "fences are exhausted (high-water \(highWater))" }
        do {
            try writeAtomically(fencePath, Array("\(reserved)\n".utf8))
        } catch {
            return "cannot save the fence reservation: \(error)"
        }
        fenceReserved = reserved
        return nil
    }

    /// Makes the loop turn's changes durable before its answers leave: the fence reservation
    /// (when the high-water mark nears it), then the journal batch. On the healthy path with
    /// nothing to write this makes no system call.
    /// - Returns: true if everything is written (the store is healthy).
    func commit(fenceHighWater: UInt64) -> Bool {
        if let problem = reserveFences(above: fenceHighWater) ?? journal.commit() {
            failure = problem
            return false
        }
        failure = nil
        return true
    }

    /// At a clean stop: the snapshot holds the exact high-water mark, so the reservation can
    /// shrink back to it and the next start continues without a jump.
    func releaseFenceReservation(highWater: UInt64) throws {
        try writeAtomically(fencePath, Array("\(highWater)\n".utf8))
        fenceReserved = highWater
    }

    /// Writes a snapshot now, on the calling thread, and starts a new journal segment: at
    /// start (after the restore) and at stop. A snapshot holds everything, so records the
    /// journal could not take are no longer needed once it is written.
    /// - Parameter now: starts the interval before the next background snapshot.
    func writeSnapshot(_ state: BrokerSnapshot, fenceHighWater: UInt64, now: Instant) throws {
        if journalSegmentAtLoad > Self.segmentNumberMax {
            // Renumbering: the snapshot says it covers segment 0, then the old segments go.
            // A crash between the two replays them over a snapshot that already holds them:
            // lease, breaker and throttle records are idempotent; telemetry events may count
            // twice, which is all this path (a damaged or hand-made file) can cost.
            journalSegmentAtLoad = 0
            writer.adopt(segment: nil)
            _ = try writer.write(snapshotPath, state, segment: 0)
            unlink(snapshotPath + ".prev")
            deleteSegments(through: UInt64.max)
            journal.discardPending()
            try journal.open(Self.journalPath(directory, 1), number: 1)
        } else {
            _ = journal.commit()
            let finished = journal.segment == 0 ? journalSegmentAtLoad : journal.segment
            try journal.open(Self.journalPath(directory, finished + 1), number: finished + 1)
            let replaced = try writer.write(snapshotPath, state, segment: finished)
            journal.discardPending()
            if let replaced, let covered = replaced { deleteSegments(through: covered) }
        }
        if let problem = reserveFences(above: fenceHighWater) { throw StartupError(description: problem) }
        failure = nil
        lastSnapshotAt = now
    }

    /// Starts a background snapshot if the journal is large or changes are a minute old (and
    /// the directory takes writes): the state is taken here as a value, encoded and written
    /// on the thread pool.
    func compactIfDue(now: Instant, _ makeSnapshot: () -> BrokerSnapshot) {
        guard failure == nil, !snapshotInFlight, journal.segmentBytes > 0 || journal.hasPending else { return }
        let age = lastSnapshotAt.map { now.milliseconds(since: $0) } ?? UInt64.max
        guard journal.segmentBytes >= Self.journalBytesMax || age >= Self.snapshotIntervalMilliseconds else { return }
        lastSnapshotAt = now
        let finished = journal.segment
        let (next, overflow) = finished.addingReportingOverflow(1)
        guard !overflow, journal.commit() == nil else { return }
        do {
            try journal.open(Self.journalPath(directory, next), number: next)
        } catch {
            logger.error("cannot start a snapshot", metadata: ["error": "\(error)"])
            return
        }
        let job = SnapshotJob(writer: writer, path: snapshotPath, state: makeSnapshot(), segment: finished)
        let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(job).toOpaque()
        snapshotInFlight = true
        uv_queue_work(loopOfJournal, request, onSnapshotWork, onSnapshotWritten)
    }

    /// The loop background snapshots are queued on (set by the server).
    var loopOfJournal: UnsafeMutablePointer<uv_loop_t>?

    /// A background snapshot finished: drop the journal segments neither it nor the previous
    /// snapshot needs.
    func snapshotFinished(_ job: SnapshotJob) {
        snapshotInFlight = false
        if let error = job.error {
            logger.error("snapshot failed; the journal keeps everything", metadata: ["error": "\(error)"])
            return
        }
        if let replaced = job.replaced, let covered = replaced { deleteSegments(through: covered) }
    }

    private func deleteSegments(through number: UInt64) {
        for old in Self.journalSegments(in: directory) where old <= number && old != journal.segment {
            unlink(Self.journalPath(directory, old))
        }
    }

    /// Takes the loop turn's journal records, to be written by the next `commit`.
    func adopt(_ batch: inout JournalBatch) { journal.adopt(&batch) }

    /// Closes the journal and gives up the directory.
    func close() {
        journal.close()
        lock.release()
    }
}
