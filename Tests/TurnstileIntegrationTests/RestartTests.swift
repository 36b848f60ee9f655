import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// protocol/PROTOCOL.md §13: what survives a restart (graceful or a crash) and what does not.
@Suite("Restarts", .timeLimit(.minutes(1)))
struct RestartTests {
    @Test func leasesSurviveAGracefulRestartAndBoundOnesCanBeReattached() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 2\n")
        let client = try daemon.client()
        let bound = try client.ask("acquire", [("ttl_ms", .integer(20_000)), ("holder", .text("bound"))])
        let detached = try client.ask("acquire", [("ttl_ms", .integer(20_000)), ("detach", .bool(true))])
        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "the socket is removed on stop")
        try daemon.start()
        let again = try daemon.client()
        let status = try again.ask("status")
        #expect(status["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 2)
        let leases = status["leases"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(leases.allSatisfy { $0["bound"]?.boolValue == false }, "restored unbound")
        #expect(try again.ask("acquire").error == "unavailable", "no over-grant after the restart")
        #expect(try again.ask("heartbeat", [("lease", bound["lease"]!)]).ok)
        #expect(try again.ask("attach", [("lease", bound["lease"]!)]).ok)
        #expect(try again.ask("heartbeat", [("lease", detached["lease"]!)]).ok)
        let fresh = try daemon.client()
        again.close()
        let after = try fresh.ask("status")
        let holders = after["leases"]?.arrayValue?.compactMap { $0.objectValue?["holder"]?.stringValue } ?? []
        #expect(!holders.contains("bound"), "once attached, closing the new connection releases it")
        #expect(after["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 1)
    }

    @Test func fencesKeepRisingAcrossRestartsAndCrashes() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let first = try client.ask("acquire")
        #expect(daemon.stop() == 0)
        try daemon.start()
        let second = try daemon.client().ask("acquire")
        #expect(second.int("fence")! == first.int("fence")! + 1, "a clean restart continues without a jump")
        daemon.crash()
        try daemon.start()
        let third = try daemon.client().ask("acquire")
        #expect(third.int("fence")! > second.int("fence")!, "after a crash fences still rise")
    }

    @Test func aCrashLosesNoAnnouncedGrant() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 3\n")
        let client = try daemon.client()
        var tokens: [JSONValue] = []
        for index in 0..<3 {
            let lease = try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(30_000)),
                                                   ("holder", .text("h\(index)"))])
            tokens.append(lease["lease"]!)
        }
        _ = try client.ask("release", [("lease", tokens[1])])
        daemon.crash()
        try daemon.start()
        let again = try daemon.client()
        #expect(try again.ask("heartbeat", [("lease", tokens[0])]).ok)
        #expect(try again.ask("heartbeat", [("lease", tokens[1])]).error == "not_found", "the release was journaled too")
        #expect(try again.ask("heartbeat", [("lease", tokens[2])]).ok)
        #expect(try again.ask("status")["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 2)
    }

    @Test func restoredLeasesExpireIfNobodyHeartbeats() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        _ = try client.ask("acquire", [("ttl_ms", .integer(300)), ("detach", .bool(true))])
        #expect(daemon.stop() == 0)
        try daemon.start()
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        #expect(try watcher.waitForEvent("expired") != nil, "the restart time plus its ttl, then gone")
    }

    @Test func breakerCountsThrottlesAndTelemetrySurvive() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        _ = try client.ask("report", [("project", .text("p")), ("agent", .text("project-meta")), ("success", .bool(false))])
        _ = try client.ask("throttle", [("provider", .text("openai")), ("retry_after_ms", .integer(60_000))])
        _ = try client.ask("record", [("model", .text("a/m")), ("latency_ms", .integer(50)), ("success", .bool(true))])
        daemon.crash()
        try daemon.start()
        let again = try daemon.client()
        let report = try again.ask("report", [("project", .text("p")), ("agent", .text("project-meta")), ("success", .bool(false))])
        #expect(report.int("count") == 2, "the count survived")
        let status = try again.ask("status")
        #expect(status["throttles"]?.arrayValue?.first?.objectValue?["provider"]?.stringValue == "openai")
        let performance = try again.ask("performance", [("model", .text("a/m"))])
        #expect(performance["models"]?.arrayValue?.first?.objectValue?["successful_completions"]?.numberValue?.int64 == 1)
    }

    @Test func aCorruptStateFileIsMovedAsideNotACrash() throws {
        let daemon = try Daemon()
        #expect(daemon.stop() == 0)
        try "{ this is not json".write(toFile: daemon.stateDirectory + "/state.json", atomically: true, encoding: .utf8)
        try daemon.start()
        #expect(try daemon.client().ask("hello").ok)
        #expect(daemon.logShows("the state file is corrupt"))
        let names = try FileManager.default.contentsOfDirectory(atPath: daemon.stateDirectory)
        #expect(names.contains { $0.hasPrefix("state.json.corrupt-") })
    }

    @Test func aTornJournalLineIsSkipped() throws {
        let daemon = try Daemon()
        let token = try daemon.client().ask("acquire", [("detach", .bool(true))])["lease"]!
        daemon.crash()
        let journals = try FileManager.default.contentsOfDirectory(atPath: daemon.stateDirectory).filter { $0.hasPrefix("journal-") }
        let handle = try #require(FileHandle(forWritingAtPath: daemon.stateDirectory + "/" + journals.sorted().last!))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"t":"grant","lease":{"tok"#.utf8))
        try handle.close()
        try daemon.start()
        #expect(try daemon.client().ask("heartbeat", [("lease", token)]).ok)
        #expect(daemon.logShows("dropped a journal record"))
    }
}
