import Foundation
import CLibUV
import Testing
import TurnstileClient
import TurnstileProtocol

/// PROTOCOL.md "State and storage": when the state directory stops taking writes, no grant is
/// answered as granted (`unavailable`, reason `storage`), releases, heartbeats and status go
/// on, the unsaved changes are kept and written once space returns, and a crash afterwards
/// restores exactly the leases that exist.
@Suite("Storage failures", .timeLimit(.minutes(1)))
struct StorageFailureTests {
    /// A `turnstiled` on paths the test chose (the state directory is a mount point, or the
    /// process runs under a file size limit).
    final class Run {
        let directory: String
        let stateDirectory: String
        var socketPath: String { directory + "/t.sock" }
        private(set) var process: ChildProcess

        init(directory: String, stateDirectory: String, fileSizeBlocks: Int? = nil) throws {
            self.directory = directory
            self.stateDirectory = stateDirectory
            process = try Self.launch(directory: directory, stateDirectory: stateDirectory, fileSizeBlocks: fileSizeBlocks)
        }

        private static func launch(directory: String, stateDirectory: String, fileSizeBlocks: Int?) throws -> ChildProcess {
            let arguments = [Binaries.turnstiled, "--config", directory + "/c.toml", "--socket", directory + "/t.sock",
                             "--state-dir", stateDirectory, "--log-level", "debug"]
            let process: ChildProcess
            if let fileSizeBlocks {
                process = try ChildProcess(["/bin/sh", "-c", "ulimit -f \(fileSizeBlocks) && exec \"$@\"", "sh"] + arguments)
            } else {
                process = try ChildProcess(arguments)
            }
            guard process.waitForOutput("turnstiled ready") else { throw DaemonError(message: "not ready:\n\(process.output)") }
            return process
        }

        /// SIGKILL, then start again on the same paths.
        func crashAndRestart() throws {
            process.signal(SIGKILL)
            _ = process.waitForExit()
            process = try Self.launch(directory: directory, stateDirectory: stateDirectory, fileSizeBlocks: nil)
        }

        func client() throws -> TurnstileClient { try TurnstileClient(socketPath: socketPath) }

        deinit {
            process.signal(SIGKILL)
            _ = process.waitForExit()
        }
    }

    /// Writes `path` until the file system is full.
    static func fill(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x2E, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Acquires (and releases) until an acquire is refused for storage.
    /// - Returns: the refusal and how many acquires were granted before it.
    static func acquireUntilStorageFails(_ client: TurnstileClient) throws -> (refusal: Answer, granted: Int)? {
        for attempt in 0..<2000 {
            let answer = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
            if answer.ok {
                _ = try client.ask("release", [("lease", answer["lease"]!)])
                continue
            }
            return (answer, attempt)
        }
        return nil
    }

    static func inUse(_ client: TurnstileClient) throws -> Int64? {
        try client.ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64
    }

    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func aFullDiskRefusesGrantsKeepsServingAndLosesNothing() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        let state = directory + "/state"
        defer {
            umount2(state, Int32(MNT_DETACH))
            try? FileManager.default.removeItem(atPath: directory)
        }
        try "".write(toFile: directory + "/c.toml", atomically: true, encoding: .utf8)
        #expect(mkdir(state, 0o700) == 0)
        try #require(mount("tmpfs", state, "tmpfs", 0, "size=128k,mode=0700") == 0, "mount: \(String(cString: strerror(errno)))")
        let daemon = try Run(directory: directory, stateDirectory: state)
        let client = try daemon.client()
        let watcher = try daemon.client()
        #expect(try watcher.ask("watch").ok)
        let released = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        let kept = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        #expect(released.ok && kept.ok)

        Self.fill(state + "/filler")
        let (refusal, grantedBefore) = try #require(try Self.acquireUntilStorageFails(client))
        #expect(refusal.error == "unavailable" && refusal["reason"]?.stringValue == "storage", "\(refusal.object)")
        #expect(Self.schemaProblems(refusal).isEmpty, "\(Self.schemaProblems(refusal))")
        #expect(daemon.process.waitForOutput("storage failed"))
        #expect(try client.ask("release", [("lease", released["lease"]!)]).ok, "releases are served")
        // Watchers saw a `granted` for every acquire answered granted, and none for the one
        // taken back: count them up to the `released` of the release just made.
        var grantedEvents = 0
        while let event = try watcher.event(), !(event["event"]?.stringValue == "released"
                                                   && event["fence"]?.numberValue?.int64 == released.int("fence")) {
            if event["event"]?.stringValue == "granted" { grantedEvents += 1 }
        }
        #expect(grantedEvents == 2 + grantedBefore, "no granted event for a withdrawn grant")
        #expect(try client.ask("heartbeat", [("lease", kept["lease"]!)]).ok, "heartbeats are served")
        #expect(try Self.inUse(client) == 1, "status is served and no withdrawn grant holds a slot")
        let again = try client.ask("acquire", [("detach", .bool(true)), ("wait_ms", .integer(5_000))])
        #expect(again["reason"]?.stringValue == "storage", "no grant while failed: \(again.object)")
        let failing = try client.ask("metrics").string("text") ?? ""
        #expect(failing.contains("turnstile_storage_healthy 0") && failing.contains("turnstile_storage_failures_total 1"), "\(failing)")

        #expect(unlink(state + "/filler") == 0)
        #expect(daemon.process.waitForOutput("storage recovered"))
        let later = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        #expect(later.ok, "grants resume")
        #expect((try client.ask("metrics").string("text") ?? "").contains("turnstile_storage_healthy 1"))

        try daemon.crashAndRestart()
        let after = try daemon.client()
        #expect(try after.ask("heartbeat", [("lease", released["lease"]!)]).error == "not_found", "the release made while failed stays")
        #expect(try after.ask("heartbeat", [("lease", kept["lease"]!)]).ok)
        #expect(try after.ask("heartbeat", [("lease", later["lease"]!)]).ok, "the lease granted after recovery survives")
        #expect(try Self.inUse(after) == 2, "exactly those two")
        #expect(!daemon.process.output.contains("dropped a journal record"), "no torn record was left in the journal")
    }

    @Test func aFileSizeLimitFailsWritesInsteadOfKillingTheDaemon() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "".write(toFile: directory + "/c.toml", atomically: true, encoding: .utf8)
        let daemon = try Run(directory: directory, stateDirectory: directory + "/state", fileSizeBlocks: 24)
        let client = try daemon.client()
        let held = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        let (refusal, _) = try #require(try Self.acquireUntilStorageFails(client))
        #expect(refusal["reason"]?.stringValue == "storage", "\(refusal.object)")
        #expect(daemon.process.terminatingSignal == nil)
        #expect(try client.ask("heartbeat", [("lease", held["lease"]!)]).ok, "still serving")
        #expect(try client.ask("status").ok)
        // The write that crossed the limit was partial: the segment was cut back to its last
        // complete batch, so the next start reads every record it holds and no torn one.
        try daemon.crashAndRestart()
        #expect(try daemon.client().ask("heartbeat", [("lease", held["lease"]!)]).ok)
        #expect(!daemon.process.output.contains("dropped a journal record"), "\(daemon.process.output)")
    }

    /// Problems of a failure answer against `protocol/schema/error.json`.
    static func schemaProblems(_ answer: Answer) -> [String] {
        let path = Binaries.packageRoot + "/protocol/schema/error.json"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let schema = try? JSONParser.parse(text).objectValue else { return ["no schema at \(path)"] }
        return SchemaValidator.problems(.object(answer.object), schema)
    }
}

/// The journal's record checksum is CRC-32C, and the CPU's instruction and the portable loop
/// agree on it.
@Suite("Journal record checksum")
struct RecordChecksumTests {
    @Test func crc32cMatchesTheStandardCheckValueAndBothImplementationsAgree() {
        let check = Array("123456789".utf8)
        #expect(turnstile_crc32c(0, check, check.count) == 0xE306_9283, "the CRC-32C check value")
        #expect(turnstile_crc32c_portable(0, check, check.count) == 0xE306_9283)
        var generator = SystemRandomNumberGenerator()
        for length in [0, 1, 7, 8, 9, 63, 64, 65, 1000] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(turnstile_crc32c(0, bytes, bytes.count) == turnstile_crc32c_portable(0, bytes, bytes.count), "\(length) bytes")
        }
    }
}
