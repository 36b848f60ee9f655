import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// README, "The CLI": SIGTERM and SIGINT stop gracefully; SIGHUP and `reload` re-read the config and
/// keep the running one when the new one is invalid.
@Suite("Signals and reload", .timeLimit(.minutes(1)))
struct SignalTests {
    @Test(arguments: [SIGTERM, SIGINT])
    func stopSignalsAnswerWaitersAndExitZero(signal: Int32) throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        _ = try client.ask("acquire")
        let waitID = try client.send("acquire", [("wait_ms", .integer(60_000))])
        _ = try client.ask("hello")
        daemon.process!.signal(signal)
        let answer = try client.answer(to: waitID, timeoutMilliseconds: 10_000)
        #expect(answer.error == "shutting_down")
        _ = daemon.process!.waitForExit()
        #expect(daemon.process!.exitCode == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
    }

    @Test func sighupWithABadConfigKeepsTheRunningOne() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        try daemon.writeConfig("[limits]\nglobal = -4\n")
        daemon.process!.signal(SIGHUP)
        #expect(daemon.process!.waitForOutput("reload refused; keeping the running config"))
        #expect(daemon.logShows("turnstile.toml:2: limits.global"))
        #expect(try client.ask("status")["global"]?.objectValue?["limit"]?.numberValue?.int64 == 1)
        try daemon.writeConfig("[limits]\nglobal = 4\n")
        daemon.process!.signal(SIGHUP)
        #expect(daemon.process!.waitForOutput("config reloaded"))
        #expect(try client.ask("status")["global"]?.objectValue?["limit"]?.numberValue?.int64 == 4)
    }

    @Test func reloadAnswersBadConfigNamingFileLineAndKey() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 2\n")
        let client = try daemon.client()
        try daemon.writeConfig("[limits]\nglobal = 2\nfairness = \"coin-flip\"\n")
        let answer = try client.ask("reload")
        #expect(answer.error == "bad_config")
        #expect(answer.message?.contains("turnstile.toml:3: limits.fairness: unknown fairness policy: coin-flip") == true,
                "\(answer.message ?? "")")
        #expect(try client.ask("status")["global"]?.objectValue?["limit"]?.numberValue?.int64 == 2)
    }

    @Test func anInvalidConfigAtStartIsRefusedWithItsLocation() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        try "[[projects]]\nname = \"a\"\nmax = \"two\"\n".write(toFile: directory + "/bad.toml", atomically: true, encoding: .utf8)
        let daemon = try ChildProcess([Binaries.turnstiled, "--config", directory + "/bad.toml", "--socket",
                                       directory + "/t.sock", "--state-dir", directory + "/state"])
        _ = daemon.waitForExit()
        #expect(daemon.exitCode == 1)
        #expect(daemon.output.contains("bad.toml:3: projects[1].max: must be a whole number"), "\(daemon.output)")
    }
}
