import CLibUV
import Foundation
import Logging
import TurnstileCore
import TurnstileProtocol

/// The state directory (SPEC §5): a snapshot (`state.json`), the journal of changes since
/// it (`journal-N.ndjson`, appended before any answer leaves, so a crashed daemon loses no
/// grant it announced), and the fence reservation (`fence`, fsynced, so fences keep rising
/// even across a power cut).
///
/// Snapshots are written atomically (temp file, fsync, rename, fsync of the directory): at
/// start and stop on the loop, in between on libuv's thread pool when the journal grows or
/// a minute has passed with changes. A corrupt snapshot is moved aside with a log line.
final class StateStore {
    /// Fences reserved per fsync of the `fence` file.
    static let fenceBlock: UInt64 = 1 << 20
    /// Journal bytes that trigger a snapshot.
    static let journalBytesMax = 8 << 20
    /// Longest time changes wait in the journal before a snapshot.
    static let snapshotIntervalMilliseconds: UInt64 = 60_000

    let directory: String
    private let logger: Logger
    private var fenceReserved: UInt64 = 0
    private var segment: UInt64 = 0
    private var journalFD: Int32 = -1
    private var pending = JSONWriter(capacity: 4096)
    private var journalBytes = 0
    private var lastSnapshotAt: Instant?
    private var snapshotInFlight = false
    /// Serialises every snapshot write, on the loop or the thread pool.
    private let writer = SnapshotWriter()

    private var snapshotPath: String { directory + "/state.json" }
    private var fencePath: String { directory + "/fence" }
    private func journalPath(_ number: UInt64) -> String { directory + "/journal-\(number).ndjson" }

    /// Creates the directory (0700) if missing.
    init(directory: String, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        guard makeDirectories(directory, mode: 0o700) else {
            throw StartupError(description: "cannot create the state directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    /// The saved state and the durable fence floor.
    struct Loaded {
        var snapshot: BrokerSnapshot
        var fenceFloor: UInt64
    }

    /// The snapshot file's layout.
    private struct StateFile: Codable {
        var version = 1
        var journalSegment: UInt64
        var state: BrokerSnapshot

        enum CodingKeys: String, CodingKey {
            case version, state
            case journalSegment = "journal_segment"
        }
    }

    /// Reads the snapshot and replays the journal after it.
    /// - Parameter telemetryTTLSeconds: how long a replayed limit error flags its model.
    func load(telemetryTTLSeconds: UInt64) -> Loaded {
        var snapshot = BrokerSnapshot(fenceHighWater: 0, leases: [], breaker: [:], throttles: [], telemetry: nil)
        var fenceFloor: UInt64 = 0
        switch readFile(fencePath, bytesMax: 64) {
        case .success(let bytes):
            if let value = UInt64(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) {
                fenceFloor = value
            } else {
                logger.error("the fence file is corrupt; fences will jump ahead to stay unique", metadata: ["file": "\(fencePath)"])
                moveAside(fencePath)
                fenceFloor = UInt64(1) << 40
            }
        case .failure: break
        }
        switch readFile(snapshotPath, bytesMax: 1 << 30) {
        case .success(let bytes):
            do {
                let file = try JSONDecoder().decode(StateFile.self, from: Data(bytes))
                snapshot = file.state
                segment = file.journalSegment
            } catch {
                logger.error("the state file is corrupt; moved aside, starting empty", metadata: ["file": "\(snapshotPath)", "error": "\(error)"])
                moveAside(snapshotPath)
            }
        case .failure(let failure) where !failure.missing:
            logger.error("cannot read the state file", metadata: ["file": "\(snapshotPath)", "error": "\(failure)"])
        case .failure: break
        }
        for number in journalSegments() where number > segment {
            replay(journalPath(number), into: &snapshot, ttlSeconds: telemetryTTLSeconds)
            segment = max(segment, number)
        }
        fenceFloor = max(fenceFloor, snapshot.fenceHighWater, snapshot.leases.map(\.fence).max() ?? 0)
        return Loaded(snapshot: snapshot, fenceFloor: fenceFloor)
    }

    private func journalSegments() -> [UInt64] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> UInt64? in
            guard name.hasPrefix("journal-"), name.hasSuffix(".ndjson") else { return nil }
            return UInt64(name.dropFirst("journal-".count).dropLast(".ndjson".count))
        }.sorted()
    }

    /// Applies one journal file to a snapshot; a torn or unreadable line is skipped.
    private func replay(_ path: String, into snapshot: inout BrokerSnapshot, ttlSeconds: UInt64) {
        guard case .success(let bytes) = readFile(path, bytesMax: 1 << 30) else { return }
        var leases = Dictionary(snapshot.leases.map { ($0.fence, $0) }, uniquingKeysWith: { $1 })
        var telemetry = snapshot.telemetry ?? TelemetrySummary(windowSeconds: 3600, exportedAt: WallTime(unixMilliseconds: 0),
                                                               modelPerformances: [])
        var skipped = 0
        let decoder = JSONDecoder()
        for line in bytes.split(separator: 0x0A) where !line.isEmpty {
            guard let record = try? decoder.decode(JournalRecord.self, from: Data(line)) else {
                skipped += 1
                continue
            }
            switch record {
            case .grant(let lease), .change(let lease):
                leases[lease.fence] = lease
                snapshot.fenceHighWater = max(snapshot.fenceHighWater, lease.fence)
            case .end(let fence): leases[fence] = nil
            case .breaker(let project, let state): snapshot.breaker[project] = state.failures > 0 ? state : nil
            case .throttle(let throttle):
                snapshot.throttles.removeAll { $0.tenant == throttle.tenant && $0.provider == throttle.provider && $0.until <= throttle.until }
                snapshot.throttles.append(throttle)
            case .record(let event):
                telemetry.events.append(event)
                if SubscriptionLimitDetector.isLimit(error: event.error, status: event.status) {
                    telemetry.subscriptionLimits[Telemetry.modelKey(event.model)] =
                        event.completedAt.adding(milliseconds: Int64(clamping: ttlSeconds) &* 1000)
                }
            }
        }
        if skipped > 0 { logger.warning("skipped unreadable journal lines", metadata: ["file": "\(path)", "lines": "\(skipped)"]) }
        snapshot.leases = leases.values.sorted { $0.fence < $1.fence }
        snapshot.telemetry = telemetry
    }

    /// Makes sure fences up to past `highWater` are durably reserved.
    func reserveFences(above highWater: UInt64) throws {
        guard highWater + Self.fenceBlock / 2 > fenceReserved else { return }
        let reserved = highWater + Self.fenceBlock
        try writeAtomically(fencePath, Array("\(reserved)\n".utf8))
        fenceReserved = reserved
    }

    /// At a clean stop: the snapshot holds the exact high-water mark, so the reservation can
    /// shrink back to it and the next start continues without a jump.
    func releaseFenceReservation(highWater: UInt64) throws {
        try writeAtomically(fencePath, Array("\(highWater)\n".utf8))
        fenceReserved = highWater
    }

    /// Writes a snapshot now, on the calling thread, and starts a new journal segment.
    /// - Parameter now: starts the interval before the next background snapshot.
    func writeSnapshot(_ state: BrokerSnapshot, now: Instant) throws {
        flushJournal()
        let finished = segment
        try openJournal(segment + 1)
        try writer.write(snapshotPath, try encode(state, segment: finished), segment: finished)
        deleteSegments(through: finished)
        journalBytes = 0
        lastSnapshotAt = now
    }

    /// Starts a background snapshot if the journal is large or changes are a minute old.
    func compactIfDue(now: Instant, _ makeSnapshot: () -> BrokerSnapshot) {
        guard !snapshotInFlight, journalBytes > 0 else { return }
        let age = lastSnapshotAt.map { now.milliseconds(since: $0) } ?? UInt64.max
        guard journalBytes >= Self.journalBytesMax || age >= Self.snapshotIntervalMilliseconds else { return }
        lastSnapshotAt = now
        let finished = segment
        do {
            flushJournal()
            try openJournal(segment + 1)
            journalBytes = 0
            let job = SnapshotJob(writer: writer, path: snapshotPath, bytes: try encode(makeSnapshot(), segment: finished),
                                  segment: finished)
            let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
            request.pointee.data = Unmanaged.passRetained(job).toOpaque()
            snapshotInFlight = true
            uv_queue_work(loopOfJournal, request, onSnapshotWork, onSnapshotWritten)
        } catch {
            logger.error("cannot start a snapshot", metadata: ["error": "\(error)"])
        }
    }

    /// The loop background snapshots are queued on (set by the server).
    var loopOfJournal: UnsafeMutablePointer<uv_loop_t>?

    /// A background snapshot finished: drop the journal segments it covers.
    func snapshotFinished(_ job: SnapshotJob) {
        snapshotInFlight = false
        if let error = job.error {
            logger.error("snapshot failed; the journal keeps everything", metadata: ["error": "\(error)"])
            return
        }
        if job.written { deleteSegments(through: job.segment) }
    }

    private func encode(_ state: BrokerSnapshot, segment: UInt64) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(StateFile(journalSegment: segment, state: state)))
    }

    private func openJournal(_ number: UInt64) throws {
        if journalFD >= 0 { Glibc.close(journalFD) }
        journalFD = open(journalPath(number), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard journalFD >= 0 else {
            throw StartupError(description: "cannot open the journal \(journalPath(number)): \(String(cString: strerror(errno)))")
        }
        segment = number
    }

    private func deleteSegments(through number: UInt64) {
        for old in journalSegments() where old <= number { unlink(journalPath(old)) }
    }

    // Journal records: appended to a buffer, written once per loop iteration.

    func journalGrant(_ lease: Lease) { JournalRecord.writeLease(&pending, change: false, lease) }
    func journalChange(_ lease: Lease) { JournalRecord.writeLease(&pending, change: true, lease) }
    func journalEnd(_ lease: Lease) { JournalRecord.writeEnd(&pending, fence: lease.fence) }
    func journalBreaker(project: String, state: CircuitBreaker.ProjectState) {
        JournalRecord.writeBreaker(&pending, project: project, state: state)
    }
    func journalThrottle(tenant: String, provider: String, until: WallTime) {
        JournalRecord.writeThrottle(&pending, tenant: tenant, provider: provider, until: until)
    }
    func journalRecord(_ event: CompletionEvent) { JournalRecord.writeEvent(&pending, event) }

    /// Writes the buffered records with one `write` (before the iteration's answers).
    func flushJournal() {
        guard !pending.isEmpty, journalFD >= 0 else { return }
        let total = pending.count
        var offset = 0
        pending.withBytes { bytes in
            while offset < total {
                let written = write(journalFD, bytes.baseAddress! + offset, total - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    logger.critical("cannot write the journal", metadata: ["error": "\(String(cString: strerror(errno)))"])
                    return
                }
                offset += written
            }
        }
        journalBytes += total
        pending.removeAll(keepingCapacityUpTo: 1 << 20)
    }

    func close() {
        if journalFD >= 0 { Glibc.close(journalFD) }
        journalFD = -1
    }

    private func moveAside(_ path: String) {
        rename(path, path + ".corrupt-\(Int(Date().timeIntervalSince1970))")
    }
}

/// The one way snapshots reach the disk, from the loop or the thread pool: one at a time,
/// and never an older journal segment's snapshot over a newer one (a background snapshot
/// that finishes after the final one at stop is dropped, not renamed over it).
final class SnapshotWriter: @unchecked Sendable {
    private let lock = NSLock()
    private var newestSegment: UInt64?

    /// Writes `bytes` as the snapshot covering journal segments up to `segment`.
    /// - Returns: false if a snapshot of a later segment was already written.
    @discardableResult
    func write(_ path: String, _ bytes: [UInt8], segment: UInt64) throws -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if let newestSegment, newestSegment > segment { return false }
        try writeAtomically(path, bytes)
        newestSegment = segment
        return true
    }
}

/// A snapshot written on the thread pool: only its own fields (and the locked writer) are
/// touched there.
final class SnapshotJob: @unchecked Sendable {
    let writer: SnapshotWriter
    let path: String
    let bytes: [UInt8]
    let segment: UInt64
    var error: String?
    var written = false

    init(writer: SnapshotWriter, path: String, bytes: [UInt8], segment: UInt64) {
        self.writer = writer
        self.path = path
        self.bytes = bytes
        self.segment = segment
    }

    /// Runs on a worker thread.
    func perform() {
        do {
            written = try writer.write(path, bytes, segment: segment)
        } catch {
            self.error = "\(error)"
        }
    }
}

/// Writes a file atomically and durably: temp file, write, fsync, rename, fsync the directory.
func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
    // A name of its own, so two writers of one file never share a temporary.
    let temporary = path + ".tmp-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw StartupError(description: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
    var offset = 0
    let failure: String? = bytes.withUnsafeBytes { buffer in
        while offset < buffer.count {
            let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            offset += written
        }
        return fsync(fd) == 0 ? nil : String(cString: strerror(errno))
    }
    Glibc.close(fd)
    if let failure { throw StartupError(description: "cannot write \(temporary): \(failure)") }
    guard rename(temporary, path) == 0 else {
        throw StartupError(description: "cannot rename \(temporary): \(String(cString: strerror(errno)))")
    }
    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    let dirFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dirFD >= 0 {
        fsync(dirFD)
        Glibc.close(dirFD)
    }
}
