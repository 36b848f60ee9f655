import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// PROTOCOL.md "State and storage": one daemon owns a state directory, a daemon that refuses
/// to start leaves it untouched, and damaged or hostile files are refused or recovered from
/// record by record, never a crash.
@Suite("State directory", .timeLimit(.minutes(1)))
struct StateDirectoryTests {
    /// Every file in a directory with its inode and bytes: "untouched" means this is equal.
    static func contents(of directory: String) throws -> [String: FileState] {
        var result: [String: FileState] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            var info = stat()
            guard lstat(directory + "/" + name, &info) == 0 else { continue }
            let bytes = info.st_mode & S_IFMT == S_IFREG ? FileManager.default.contents(atPath: directory + "/" + name) : nil
            result[name] = FileState(inode: info.st_ino, bytes: bytes)
        }
        return result
    }

    struct FileState: Equatable {
        var inode: UInt
        var bytes: Data?
    }

    /// Runs `turnstiled` on `stateDirectory` until it exits (it is expected to refuse).
    static func refusedStart(socket: String, stateDirectory: String) throws -> ChildProcess {
        let process = try ChildProcess([Binaries.turnstiled, "--socket", socket, "--state-dir", stateDirectory,
                                        "--log-level", "debug"])
        #expect(process.waitForExit() != nil, "a refused start exits")
        return process
    }

    @Test func aSecondDaemonOnTheSameStateDirectoryRefusesAndTouchesNothing() throws {
        let owner = try Daemon()
        let client = try owner.client()
        let lease = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        let before = try Self.contents(of: owner.stateDirectory)
        let other = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        let second = try Self.refusedStart(socket: other + "/b.sock", stateDirectory: owner.stateDirectory)
        #expect(second.exitCode == 1)
        let pid = try #require(owner.process?.pid)
        #expect(second.output.contains("pid \(pid)"), "names the owner's pid: \(second.output)")
        #expect(second.output.contains(owner.socketPath), "names the owner's socket")
        #expect(try Self.contents(of: owner.stateDirectory) == before, "the owner's files are as they were")
        #expect(!FileManager.default.fileExists(atPath: other + "/b.sock"))
        #expect(try client.ask("heartbeat", [("lease", lease["lease"]!)]).ok, "the owner still serves")
        _ = try client.ask("release", [("lease", lease["lease"]!)])
        #expect(try client.ask("acquire").ok, "and journals")
    }

    @Test(arguments: ["too long", "regular file"])
    func aStartRefusedForItsSocketLeavesTheStateDirectoryUntouched(_ problem: String) throws {
        let daemon = try Daemon()
        _ = try daemon.client().ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        daemon.crash()
        let before = try Self.contents(of: daemon.stateDirectory)
        var socket = daemon.directory + "/" + String(repeating: "s", count: 120)
        if problem == "regular file" {
            socket = daemon.directory + "/file.sock"
            try "not a socket".write(toFile: socket, atomically: true, encoding: .utf8)
        }
        let refused = try Self.refusedStart(socket: socket, stateDirectory: daemon.stateDirectory)
        #expect(refused.exitCode == 1, "\(refused.output)")
        #expect(try Self.contents(of: daemon.stateDirectory) == before, "no state file was read into a rewrite or removed")
    }

    @Test func leftoverTemporaryFilesAreRemovedAtStart() throws {
        let daemon = try Daemon()
        #expect(daemon.stop() == 0)
        let leftover = daemon.stateDirectory + "/state.json.tmp-abc123"
        try "{".write(toFile: leftover, atomically: false, encoding: .utf8)
        try daemon.start()
        #expect(!FileManager.default.fileExists(atPath: leftover))
    }
}

/// Damaged and impossible numbers in the state directory (PROTOCOL.md "State and storage").
@Suite("Damaged state", .timeLimit(.minutes(1)))
struct DamagedStateTests {
    @Test func anImpossibleFenceHighWaterRefusesTheStartWithoutATrap() throws {
        let daemon = try Daemon()
        #expect(daemon.stop() == 0)
        try "18446744073709551000\n".write(toFile: daemon.stateDirectory + "/fence", atomically: true, encoding: .utf8)
        let refused = try StateDirectoryTests.refusedStart(socket: daemon.socketPath, stateDirectory: daemon.stateDirectory)
        #expect(refused.terminatingSignal == nil, "no trap")
        #expect(refused.exitCode == 1)
        #expect(refused.output.contains("too close to 2^64"), "\(refused.output)")
        let fence = try String(contentsOfFile: daemon.stateDirectory + "/fence", encoding: .utf8)
        #expect(fence == "18446744073709551000\n", "never reset: fences do not go backwards")
    }

    @Test func aSegmentNumberedAtTheTopOfUInt64IsReplayedAndRenumbered() throws {
        let daemon = try Daemon()
        let token = try daemon.client().ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])["lease"]!
        daemon.crash()
        let directory = daemon.stateDirectory
        let journal = try #require(try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix("journal-") }.max { $0.count < $1.count || ($0.count == $1.count && $0 < $1) })
        try FileManager.default.moveItem(atPath: directory + "/" + journal, toPath: directory + "/journal-18446744073709551615.ndjson")
        try daemon.start()
        #expect(try daemon.client().ask("heartbeat", [("lease", token)]).ok, "its lease is restored")
        #expect(daemon.logShows("journal segment numbers start again from 1"))
        daemon.crash()
        try daemon.start()
        #expect(try daemon.client().ask("heartbeat", [("lease", token)]).ok, "and survives the next start")
    }

    @Test func aSnapshotCoveringTheLastSegmentNumberIsHandled() throws {
        let daemon = try Daemon()
        let token = try daemon.client().ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])["lease"]!
        #expect(daemon.stop() == 0)
        let path = daemon.stateDirectory + "/state.json"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text.replace(#/"journal_segment":\d+/#, with: #""journal_segment":18446744073709551615"#)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try daemon.start()
        #expect(try daemon.client().ask("heartbeat", [("lease", token)]).ok)
        let second = try daemon.client().ask("acquire", [("detach", .bool(true))])
        #expect(second.ok)
        daemon.crash()
        try daemon.start()
        #expect(try daemon.client().ask("heartbeat", [("lease", second["lease"]!)]).ok, "the journal after it is replayed")
    }

    @Test func anImpossibleBreakerCountIsDroppedNotCountedOnFrom() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        _ = try client.ask("report", [("project", .text("p")), ("agent", .text("project-meta")), ("success", .bool(false))])
        #expect(daemon.stop() == 0)
        let path = daemon.stateDirectory + "/state.json"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text.replace(#/"failures":1/#, with: #""failures":9223372036854775807"#)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try daemon.start()
        #expect(daemon.logShows("dropped an impossible circuit-breaker count"))
        let report = try daemon.client().ask("report", [("project", .text("p")), ("agent", .text("project-meta")), ("success", .bool(false))])
        #expect(report.int("count") == 1, "counting starts again instead of overflowing")
    }

    @Test func oneBadLeaseIsDroppedAloneAndNamed() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 3\n")
        let client = try daemon.client()
        var leases: [Answer] = []
        for _ in 0..<3 {
            leases.append(try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000)), ("model", .text("acme/m"))]))
        }
        #expect(daemon.stop() == 0)
        let path = daemon.stateDirectory + "/state.json"
        var state = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var inner = try #require(state["state"] as? [String: Any])
        var records = try #require(inner["leases"] as? [[String: Any]])
        let bad = try #require(records.firstIndex { ($0["fence"] as? Int).map(Int64.init) == leases[1].int("fence") })
        records[bad]["model"] = "no-slash"
        inner["leases"] = records
        state["state"] = inner
        try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: path))
        try daemon.start()
        let again = try daemon.client()
        #expect(try again.ask("heartbeat", [("lease", leases[0]["lease"]!)]).ok)
        #expect(try again.ask("heartbeat", [("lease", leases[1]["lease"]!)]).error == "not_found")
        #expect(try again.ask("heartbeat", [("lease", leases[2]["lease"]!)]).ok)
        #expect(daemon.logShows("lease fence \(leases[1].int("fence")!): state.leases.1.model: not provider/model"), "the log names the fence and field: \(daemon.log)")
        #expect(!daemon.log.contains("the state file is corrupt"))
    }

    @Test(arguments: ["crash", "graceful stop"])
    func anEmptyStateFileLosesNoLeaseAndOverGrantsNothing(_ ending: String) throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 2\n")
        let client = try daemon.client()
        let first = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        let second = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])
        // After a crash the leases are in the journal; after a graceful stop, in the snapshot
        // that is then emptied (the previous one and the journal after it still hold them).
        if ending == "crash" { daemon.crash() } else { #expect(daemon.stop() == 0) }
        try Data().write(to: URL(fileURLWithPath: daemon.stateDirectory + "/state.json"))
        try daemon.start()
        let again = try daemon.client()
        #expect(try again.ask("heartbeat", [("lease", first["lease"]!)]).ok)
        #expect(try again.ask("heartbeat", [("lease", second["lease"]!)]).ok)
        let refused = try again.ask("acquire")
        #expect(refused.error == "unavailable" && refused["reason"]?.stringValue == "global", "no over-grant")
        #expect(daemon.logShows("the state file is corrupt; moved aside"))
        let fence = try again.ask("status")["leases"]?.arrayValue?.compactMap { $0.objectValue?["fence"]?.numberValue?.int64 }.max()
        #expect(fence == second.int("fence"))
    }

    @Test func anUnreadableJournalSegmentIsNamedAndTheRestRestored() throws {
        let daemon = try Daemon()
        let token = try daemon.client().ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))])["lease"]!
        daemon.crash()
        // A directory where a segment should be: reading it fails (EISDIR), as an I/O error would.
        let unreadable = daemon.stateDirectory + "/journal-99999.ndjson"
        try FileManager.default.createDirectory(atPath: unreadable, withIntermediateDirectories: false)
        try daemon.start()
        #expect(daemon.logShows("cannot read a journal segment"))
        #expect(daemon.log.contains(unreadable), "named")
        #expect(try daemon.client().ask("heartbeat", [("lease", token)]).ok)
    }

    @Test func aJournalRecordFailingItsChecksumIsDroppedAloneAndNamed() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        var tokens: [JSONValue] = []
        for holder in ["one", "two", "six"] {
            tokens.append(try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000)), ("holder", .text(holder))])["lease"]!)
        }
        daemon.crash()
        let names = try FileManager.default.contentsOfDirectory(atPath: daemon.stateDirectory).filter { $0.hasPrefix("journal-") }
        var damaged = false
        for name in names {
            let path = daemon.stateDirectory + "/" + name
            let text = try String(contentsOfFile: path, encoding: .utf8)
            guard text.contains(#""holder":"two""#) else { continue }
            try text.replacingOccurrences(of: #""holder":"two""#, with: #""holder":"twO""#).write(toFile: path, atomically: true, encoding: .utf8)
            damaged = true
        }
        #expect(damaged)
        try daemon.start()
        let again = try daemon.client()
        #expect(try again.ask("heartbeat", [("lease", tokens[0])]).ok)
        #expect(try again.ask("heartbeat", [("lease", tokens[1])]).error == "not_found", "a damaged record is not believed")
        #expect(try again.ask("heartbeat", [("lease", tokens[2])]).ok, "the record after it is kept")
        #expect(daemon.logShows("checksum mismatch"))
    }
}
