import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// A long wait in `turnstile run` (README "The CLI"): it hears again where it stands when that
/// changes, and it can be cancelled by its holder label from another shell.
@Suite("Waiting runs: progress and cancel", .timeLimit(.minutes(1)))
struct WaitingRunTests {
    @Test func aLongWaitReportsAChangedReasonAgain() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1")
        let client = try daemon.client()
        let held = try client.ask("acquire", [("holder", .text("blocker"))])
        #expect(held.ok)
        let waiting = try CLIRunTests.turnstile(daemon, ["run", "--verbose", "--project", "beta", "--holder", "late",
                                                         "--", "echo", "ran"])
        #expect(waiting.waitForOutput("waiting: global (position 1)"), "\(waiting.output)")
        #expect(try client.ask("pause", [("project", .text("beta"))]).ok)
        #expect(waiting.waitForOutput("waiting: paused (position 1)", milliseconds: 25_000), "\(waiting.output)")
        #expect(try client.ask("resume", [("project", .text("beta"))]).ok)
        _ = try client.ask("release", [("lease", .text(held.string("lease")!))])
        _ = waiting.waitForExit()
        #expect(waiting.exitCode == 0 && waiting.output.contains("ran"))
    }

    @Test func cancelByHolderEndsAWaitingRunWithoutRunningIt() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1")
        let client = try daemon.client()
        #expect(try client.ask("acquire").ok)
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let waiting = try CLIRunTests.turnstile(daemon, ["run", "--holder", "nightly", "--", "sh", "-c", "echo ran"])
        var queued = false
        for _ in 0..<2000 where !queued {
            queued = try client.ask("status")["global"]?.objectValue?["waiting"]?.numberValue?.int64 == 1
        }
        #expect(queued)
        let cancelled = try CLICommandTests.cli(daemon, ["cancel", "nightly"])
        #expect(cancelled.exitCode == 0 && cancelled.output.contains("cancelled 1"), "\(cancelled.output)")
        _ = waiting.waitForExit()
        #expect(waiting.exitCode == 75, "\(waiting.output)")
        #expect(!waiting.output.contains("ran") && waiting.output.contains("cancelled"))
        let none = try client.ask("cancel", [("holder", .text("nightly"))])
        #expect(none.error == "not_found")
    }
}
