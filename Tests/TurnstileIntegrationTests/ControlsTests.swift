import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// protocol/PROTOCOL.md §8.8 to §8.10: pause flag files, the circuit breaker and its hook.
@Suite("Pause flags and the circuit breaker", .timeLimit(.minutes(1)))
struct ControlsTests {
    @Test func pauseAndResumeWriteTheFlagFileBeforeAnswering() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let flag = daemon.pauseDirectory + "/alpha"
        let paused = try client.ask("pause", [("project", .text("alpha"))])
        #expect(paused.ok && paused["paused"]?.boolValue == true)
        #expect(FileManager.default.fileExists(atPath: flag), "the file exists when the answer arrives")
        #expect(try client.ask("acquire", [("project", .text("alpha"))]).string("reason") == "paused")
        #expect(try client.ask("acquire").ok, "acquires without a project are never paused")
        let resumed = try client.ask("resume", [("project", .text("alpha"))])
        #expect(resumed.ok && resumed["paused"]?.boolValue == false)
        #expect(!FileManager.default.fileExists(atPath: flag), "and is gone when resume answers")
        #expect(try client.ask("acquire", [("project", .text("alpha"))]).ok)
        #expect(try client.ask("pause", [("project", .text("__global__"))]).error == "bad_request")
    }

    @Test func flagFilesTouchedByHandPauseAndResume() throws {
        let daemon = try Daemon()
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let flag = daemon.pauseDirectory + "/beta"
        touch(flag)
        let paused = try watcher.waitForEvent("paused", within: 5000)
        #expect(paused?["project"]?.stringValue == "beta")
        let client = try daemon.client()
        let waitID = try client.send("acquire", [("project", .text("beta")), ("wait_ms", .integer(30_000))])
        try FileManager.default.removeItem(atPath: flag)
        #expect(try watcher.waitForEvent("resumed", within: 5000)?["project"]?.stringValue == "beta")
        #expect(try client.answer(to: waitID, timeoutMilliseconds: 10_000).ok, "the waiter wakes when the flag goes")
    }

    @Test func aFlagFilePresentAtStartPauses() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/state/pause", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: directory + "/state/pause/gamma", contents: nil)
        let daemon = try ChildProcess([Binaries.turnstiled, "--socket", directory + "/t.sock", "--state-dir", directory + "/state"])
        #expect(daemon.waitForOutput("turnstiled ready"))
        let answer = try TurnstileClient(socketPath: directory + "/t.sock")
            .call("acquire", [("project", .text("gamma"))], timeoutMilliseconds: 10_000)
        #expect(answer.string("reason") == "paused")
    }

    @Test func theBreakerTripsOncePausesAndRunsItsHook() throws {
        let daemon = try Daemon(config: """
            [circuit_breaker]
            threshold = 2
            on_trip = "echo \\"$TURNSTILE_PROJECT $TURNSTILE_FAILURES\\" > \\"$TURNSTILE_HOOK_OUT\\""
            """)
        _ = daemon
        let hookOut = daemon.directory + "/hook.out"
        // The hook's environment is the daemon's plus the two variables: pass the output path
        // through a restarted daemon's environment.
        daemon.stop()
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_HOOK_OUT"] = hookOut
        let process = try ChildProcess([Binaries.turnstiled, "--config", daemon.configPath, "--socket", daemon.socketPath,
                                        "--state-dir", daemon.stateDirectory], environment: environment)
        #expect(process.waitForOutput("turnstiled ready"))
        let client = try TurnstileClient(socketPath: daemon.socketPath)
        let watcher = try TurnstileClient(socketPath: daemon.socketPath)
        _ = try watcher.ask("watch")
        let report: [(String, JSONValue)] = [("project", .text("odilo")), ("agent", .text("project-meta-odilo")),
                                            ("success", .bool(false))]
        let first = try client.ask("report", report)
        #expect(first.int("count") == 1 && first["tripped"]?.boolValue == false && first["counted"]?.boolValue == true)
        let second = try client.ask("report", report)
        #expect(second.int("count") == 2 && second["tripped"]?.boolValue == true)
        #expect(FileManager.default.fileExists(atPath: daemon.pauseDirectory + "/odilo"), "paused before the answer")
        let third = try client.ask("report", report)
        #expect(third.int("count") == 3 && third["tripped"]?.boolValue == false, "trips once")
        let other = try client.ask("report", [("project", .text("odilo")), ("agent", .text("developer")), ("success", .bool(false))])
        #expect(other["counted"]?.boolValue == false && other.int("count") == 3)
        let tripped = try watcher.waitForEvent("tripped")
        #expect(tripped?["project"]?.stringValue == "odilo" && tripped?["failures"]?.numberValue?.int64 == 2)
        #expect(process.waitForOutput("on_trip finished"))
        #expect(try String(contentsOfFile: hookOut, encoding: .utf8) == "odilo 2\n")
        #expect(process.output.contains("circuit breaker tripped"))
        process.signal(SIGTERM)
        _ = process.waitForExit()
    }
}

/// Project names that begin with a dot are projects like any other: their flag files are
/// flags, not hidden files to skip (a rescan used to lift them at once).
@Suite("Pause flags of dot-names", .timeLimit(.minutes(1)))
struct DotNamePauseTests {
    @Test func aDotNamePausedByAnOpOrATripStaysPausedAcrossRescans() throws {
        let daemon = try Daemon(config: "[circuit_breaker]\nthreshold = 1\n")
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let client = try daemon.client()
        #expect(try client.ask("pause", [("project", .text(".x"))]).ok)
        let report: [(String, JSONValue)] = [("project", .text(".meta")), ("agent", .text("project-meta")),
                                             ("success", .bool(false))]
        #expect(try client.ask("report", report)["tripped"]?.boolValue == true)
        // A flag touched by hand is seen by a rescan: once its event came, the rescan that
        // saw it also saw the flags of .x and .meta.
        touch(daemon.pauseDirectory + "/.byhand")
        var seen: [String] = []
        while let event = try watcher.event(within: 5000) {
            let name = event["event"]?.stringValue ?? ""
            if name == "resumed" { Issue.record("a rescan lifted \(event["project"]?.stringValue ?? "?")") }
            if name == "paused", let project = event["project"]?.stringValue { seen.append(project) }
            if seen.contains(".byhand") { break }
        }
        #expect(seen.contains(".byhand"), "a dot-name flag touched by hand pauses (saw \(seen))")
        for project in [".x", ".meta", ".byhand"] {
            #expect(try client.ask("acquire", [("project", .text(project))]).string("reason") == "paused", "\(project)")
            #expect(FileManager.default.fileExists(atPath: daemon.pauseDirectory + "/" + project), "\(project)'s flag stays")
        }
        #expect(try client.ask("resume", [("project", .text(".x"))]).ok)
        #expect(try client.ask("acquire", [("project", .text(".x"))]).ok)
    }
}

/// Creates an empty file in place, as `touch` does. (FileManager's createFile writes a hidden
/// temporary file and renames it: in a pause directory that temporary is a flag of its own.)
func touch(_ path: String) {
    close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644))
}
