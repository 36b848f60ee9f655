#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import TurnstileCore
import TurnstileSession

/// Reads the state directory back at start (PROTOCOL.md, "State and storage"), one record at
/// a time: a lease, breaker count or journal line that cannot be used is dropped alone, with a
/// log line naming it, and the rest is restored. An unusable `state.json` (empty, not JSON) is
/// moved aside and the previous snapshot (`state.json.prev`, kept by SnapshotWriter), the
/// journal segments after it and the fence file are used instead, so no lease is lost. Every number read is checked: a fence high-water mark too close
/// to 2^64 to keep rising refuses the start (fences never go backwards, so it is not reset).
struct StateLoader {
    /// Highest fence floor the daemon starts from: above it the reservation arithmetic and the
    /// fences still to come would not fit in 64 bits. No real daemon comes near it.
    static let fenceFloorMax: UInt64 = UInt64.max - (1 << 32)

    let directory: String
    let logger: Logger
    let telemetryTTLSeconds: UInt64

    /// What the directory held.
    struct Loaded {
        var snapshot = BrokerSnapshot(fenceHighWater: 0, leases: [], breaker: [:], throttles: [], telemetry: nil)
        var fenceFloor: UInt64 = 0
        /// The last journal segment found (or the one the snapshot covers).
        var segment: UInt64 = 0
        /// The segment `state.json` covers, when it was usable.
        var snapshotSegment: UInt64?
    }

    /// Reads the fence file, the snapshot and the journal segments after it.
    /// - Throws: a `StartupError` when the fence high-water mark is impossible.
    func load() throws -> Loaded {
        var loaded = Loaded()
        loaded.fenceFloor = readFenceFile()
        var covered: UInt64?
        if let file = readSnapshot(directory + "/state.json") {
            loaded.snapshot = file.snapshot
            covered = file.journalSegment
            loaded.snapshotSegment = file.journalSegment
        } else if access(directory + "/state.json.prev", F_OK) == 0, let file = readSnapshot(directory + "/state.json.prev") {
            logger.warning("restoring from the previous snapshot and the journal after it", metadata: ["file": "\(directory)/state.json.prev"])
            loaded.snapshot = file.snapshot
            covered = file.journalSegment
        }
        loaded.segment = covered ?? 0
        for number in StateStore.journalSegments(in: directory) where covered.map({ number > $0 }) ?? true {
            replay(number, into: &loaded.snapshot)
            loaded.segment = max(loaded.segment, number)
        }
        dropImpossibleBreakerCounts(&loaded.snapshot)
        let leaseFences = loaded.snapshot.leases.map(\.fence).max() ?? 0
        loaded.fenceFloor = max(loaded.fenceFloor, loaded.snapshot.fenceHighWater, leaseFences)
        guard loaded.fenceFloor <= Self.fenceFloorMax else {
            throw StartupError(description: "the saved fence high-water mark \(loaded.fenceFloor) in \(directory) is too close to 2^64 "
                               + "for fences to keep rising; fences never go backwards, so turnstiled will not reset it: "
                               + "check the fence file, state.json and the journal segments")
        }
        return loaded
    }

    /// Most consecutive failures a saved breaker count may hold: counting on from more could
    /// overflow, and no real project fails this often.
    static let breakerFailuresMax = Int(Int32.max)

    /// Drops breaker counts no daemon could have saved (negative, or too large to count on).
    private func dropImpossibleBreakerCounts(_ snapshot: inout BrokerSnapshot) {
        for (project, state) in snapshot.breaker where !(0...Self.breakerFailuresMax).contains(state.failures) {
            logger.error("dropped an impossible circuit-breaker count",
                         metadata: ["project": "\(project)", "failures": "\(state.failures)"])
            snapshot.breaker[project] = nil
        }
    }

    private func readFenceFile() -> UInt64 {
        let path = directory + "/fence"
        switch readFile(path, bytesMax: 64) {
        case .success(let bytes):
            if let value = UInt64(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) {
                return value
            }
            logger.error("the fence file is corrupt; fences will jump ahead to stay unique", metadata: ["file": "\(path)"])
            moveAside(path)
            return UInt64(1) << 40
        case .failure(let failure) where !failure.missing:
            logger.error("cannot read the fence file; fences will jump ahead to stay unique",
                         metadata: ["file": "\(path)", "error": "\(failure)"])
            return UInt64(1) << 40
        case .failure:
            return 0
        }
    }

    /// A snapshot, record by record; nil if there is none or it is unusable as a whole (then it
    /// is moved aside).
    private func readSnapshot(_ path: String) -> SavedState? {
        switch readFile(path, bytesMax: 1 << 30) {
        case .success(let bytes):
            do {
                let file = try JSONDecoder().decode(SavedState.self, from: Data(bytes))
                for problem in file.problems {
                    logger.error("dropped a record of the state file", metadata: ["file": "\(path)", "record": "\(problem)"])
                }
                return file
            } catch {
                logger.error("the state file is corrupt; moved aside, restoring without it",
                             metadata: ["file": "\(path)", "error": "\(bytes.isEmpty ? "empty file" : describe(error))"])
                moveAside(path)
                return nil
            }
        case .failure(let failure) where !failure.missing:
            logger.error("cannot read the state file; restoring without it",
                         metadata: ["file": "\(path)", "error": "\(failure)"])
            return nil
        case .failure:
            return nil
        }
    }

    /// Applies one journal segment; a record that fails its checksum or does not decode is
    /// dropped with a log line naming the file and line.
    private func replay(_ number: UInt64, into snapshot: inout BrokerSnapshot) {
        let path = StateStore.journalPath(directory, number)
        let bytes: [UInt8]
        switch readFile(path, bytesMax: 1 << 30) {
        case .success(let read): bytes = read
        case .failure(let failure):
            logger.error("cannot read a journal segment; its changes are lost", metadata: ["file": "\(path)", "error": "\(failure)"])
            return
        }
        let (records, bad) = JournalReader.records(in: bytes)
        for record in bad {
            logger.warning("dropped a journal record", metadata: ["file": "\(path)", "line": "\(record.line)", "why": "\(record.why)"])
        }
        apply(records, to: &snapshot)
    }

    private func apply(_ records: [JournalRecord], to snapshot: inout BrokerSnapshot) {
        var leases = Dictionary(snapshot.leases.map { ($0.fence, $0) }, uniquingKeysWith: { $1 })
        var telemetry = snapshot.telemetry ?? TelemetrySummary(windowSeconds: 3600, exportedAt: WallTime(unixMilliseconds: 0),
                                                               modelPerformances: [])
        let flagMilliseconds = Int64(clamping: telemetryTTLSeconds.multipliedReportingOverflow(by: 1000).partialValue)
        for record in records {
            switch record {
            case .grant(let lease), .change(let lease):
                leases[lease.fence] = lease
                snapshot.fenceHighWater = max(snapshot.fenceHighWater, lease.fence)
            case .end(let fence): leases[fence] = nil
            case .breaker(let project, let state): snapshot.breaker[project] = state.failures > 0 ? state : nil
            case .throttle(let throttle):
                snapshot.throttles.removeAll { $0.tenant == throttle.tenant && $0.provider == throttle.provider && $0.until <= throttle.until }
                snapshot.throttles.append(throttle)
            case .unthrottle(let tenant, let provider):
                snapshot.throttles.removeAll { $0.tenant == tenant && $0.provider == provider }
            case .unflag(let model): telemetry.subscriptionLimits[model] = nil
            case .record(let event):
                telemetry.events.append(event)
                if SubscriptionLimitDetector.isLimit(error: event.error, status: event.status) {
                    let (end, overflow) = event.completedAt.unixMilliseconds.addingReportingOverflow(flagMilliseconds)
                    telemetry.subscriptionLimits[Telemetry.modelKey(event.model)] = WallTime(unixMilliseconds: overflow ? Int64.max : end)
                }
            }
        }
        snapshot.leases = leases.values.sorted { $0.fence < $1.fence }
        snapshot.telemetry = telemetry
    }

    private func moveAside(_ path: String) {
        rename(path, path + ".corrupt-\(Int(Date().timeIntervalSince1970))")
    }
}
