import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// The CLI as shell users expect it (README, "The CLI"): shared options before the command,
/// `--version`, bare tokens for `$(…)`, an exit code of one's choosing for "no permit",
/// workspaces resolved where the caller stands, `forbidden` told as such, a holding `attach`,
/// and `turnstiled --check-config`.
@Suite("CLI shell conventions", .timeLimit(.minutes(1)))
struct CLIShellConventionsTests {
    /// Runs `turnstile ARGS…` without TURNSTILE_SOCKET, so only the arguments name the socket.
    func bare(_ arguments: [String], binary: String = Binaries.turnstile) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = nil
        environment["XDG_RUNTIME_DIR"] = "/nonexistent"
        let process = try ChildProcess([binary] + arguments, environment: environment)
        _ = process.waitForExit()
        return process
    }

    @Test func sharedOptionsMayComeBeforeTheCommand() throws {
        let daemon = try Daemon()
        for arguments in [["--socket", daemon.socketPath, "status", "--json"], ["--socket=\(daemon.socketPath)", "status", "--json"],
                          ["status", "--socket", daemon.socketPath, "--json"]] {
            let status = try bare(arguments)
            #expect(status.exitCode == 0, "\(arguments): \(status.output)")
            #expect(status.output.contains(#""global""#))
        }
        let run = try bare(["--socket", daemon.socketPath, "run", "--", "sh", "-c", "exit 3"])
        #expect(run.exitCode == 3, "\(run.output)")
    }

    @Test func bothExecutablesTellTheirVersion() throws {
        for binary in [Binaries.turnstile, Binaries.turnstiled] {
            let version = try bare(["--version"], binary: binary)
            #expect(version.exitCode == 0)
            #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == TurnstileVersion.current)
        }
    }

    @Test func acquireTokenPrintsTheBareToken() throws {
        let daemon = try Daemon()
        let acquired = try CLIRunTests.finished(daemon, ["acquire", "--token", "--holder", "sh"])
        #expect(acquired.exitCode == 0)
        let token = acquired.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.count == 32 && token.allSatisfy(\.isHexDigit), "\(acquired.output)")
        #expect(try CLIRunTests.finished(daemon, ["release", token]).exitCode == 0, "it is the lease's token")
    }

    @Test func conflictExitCodeReplaces75() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        _ = try daemon.client().ask("acquire", [("detach", .bool(true))])
        let refused = try CLIRunTests.finished(daemon, ["run", "--wait", "0", "--conflict-exit-code", "9", "--", "true"])
        #expect(refused.exitCode == 9, "\(refused.output)")
        #expect(try CLIRunTests.finished(daemon, ["run", "--wait", "0", "--", "true"]).exitCode == 75)
        #expect(try CLIRunTests.finished(daemon, ["run", "--conflict-exit-code", "300", "--", "true"]).exitCode == 64)
    }

    @Test func relativeAndSymlinkedWorkspacesAreOneLock() throws {
        let daemon = try Daemon()
        let tree = daemon.directory + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/app", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: daemon.directory + "/link", withDestinationPath: tree)
        var environment = ProcessInfo.processInfo.environment
        environment["TURNSTILE_SOCKET"] = daemon.socketPath
        let relative = try ChildProcess(["/bin/sh", "-c", "cd \(tree) && \(Binaries.turnstile) acquire --token --workspace app"],
                                        environment: environment)
        _ = relative.waitForExit()
        #expect(relative.exitCode == 0, "\(relative.output)")
        let status = try daemon.client().ask("status")
        let path = status["leases"]?.arrayValue?.first?.objectValue?["workspace"]?.stringValue
        #expect(path == tree + "/app", "sent resolved: \(path ?? "nil")")
        for spelling in [tree + "/app", daemon.directory + "/link/app/", daemon.directory + "/link/../tree/app"] {
            let second = try CLIRunTests.finished(daemon, ["acquire", "--wait", "0", "--workspace", spelling])
            #expect(second.exitCode == 75, "\(spelling): \(second.output)")
            #expect(second.output.contains("workspace_lock"))
        }
    }

    @Test func aPartlyFailedHeartbeatExits1() throws {
        let daemon = try Daemon()
        let token = try #require(try daemon.client().ask("acquire", [("detach", .bool(true))]).string("lease"))
        #expect(try CLIRunTests.finished(daemon, ["heartbeat", token]).exitCode == 0)
        let partly = try CLIRunTests.finished(daemon, ["heartbeat", token, String(repeating: "0", count: 32)])
        #expect(partly.exitCode == 1, "\(partly.output)")
        #expect(partly.output.contains("not_found"))
    }

    @Test func attachHoldsTheLeaseUntilInterrupted() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let token = try #require(try client.ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(600))]).string("lease"))
        let attach = try CLIRunTests.turnstile(daemon, ["attach", token])
        #expect(attach.waitForOutput("holding lease"), "\(attach.output)")
        // Several ttls pass: the lease lives on attach's heartbeats, bound to its connection.
        let watcher = try daemon.client()
        #expect(try watcher.ask("watch").ok)
        #expect(try watcher.event(within: 2000) == nil, "no lease event for more than three ttls")
        #expect(attach.exitCode == nil, "attach does not return while the lease lives")
        let lease = try client.ask("status")["leases"]?.arrayValue?.first?.objectValue
        #expect(lease?["bound"]?.boolValue == true)
        attach.signal(SIGTERM)
        _ = attach.waitForExit()
        #expect(attach.exitCode == 0, "\(attach.output)")
        #expect(try watcher.waitForEvent("released")?["fence"] != nil, "the lease is given back when attach is interrupted")
        #expect(try CLIRunTests.finished(daemon, ["attach", token]).exitCode == 1, "a token that is gone: not_found")
    }

    @Test func aRefusedUserIsToldForbidden() throws {
        let daemon = try Daemon()
        chmod(daemon.directory, 0o711)
        let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", Binaries.turnstile,
                      "--socket", daemon.socketPath]
        let status = try ChildProcess(nobody + ["status"])
        _ = status.waitForExit()
        #expect(status.exitCode == 1, "\(status.output)")
        #expect(status.output.contains("forbidden") && !status.output.contains("no daemon"), "\(status.output)")
        try daemon.writeConfig(#"socket_mode = "0666""#)
        daemon.stop()
        try daemon.start()
        let run = try ChildProcess(nobody + ["run", "--", "true"])
        _ = run.waitForExit()
        #expect(run.exitCode == 1, "\(run.output)")
        #expect(run.output.contains("forbidden") && run.output.contains("uid 65534 may not connect"), "\(run.output)")
    }

    @Test func recordRefusesNonFiniteCostsAndSaturatesTokenSums() throws {
        let daemon = try Daemon()
        let huge = try CLIRunTests.finished(daemon, ["record", "--model", "a/b", "--latency", "1s", "--success",
                                                     "--input-tokens", "18446744073709551615", "--output-tokens", "1"])
        #expect(huge.exitCode != nil && huge.exitCode! < 128, "no trap: \(huge.output)")
        let nan = try CLIRunTests.finished(daemon, ["record", "--model", "a/b", "--latency", "1s", "--success", "--cost-usd", "nan"])
        #expect(nan.exitCode == 64, "\(nan.output)")
    }

    @Test func checkConfigValidatesAFileAndExits() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = directory + "/good.toml", bad = directory + "/bad.toml"
        try "[limits]\nglobal = 4\n".write(toFile: good, atomically: true, encoding: .utf8)
        try "[limits]\nglobl = 4\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let valid = try bare(["--check-config", good], binary: Binaries.turnstiled)
        #expect(valid.exitCode == 0 && valid.output.contains("valid"), "\(valid.output)")
        let invalid = try bare(["--check-config", bad], binary: Binaries.turnstiled)
        #expect(invalid.exitCode == 64, "\(invalid.output)")
        #expect(invalid.output.contains("bad.toml:2") && invalid.output.contains("globl"), "\(invalid.output)")
    }

    @Test func theReadyLineNamesTheConfigFile() throws {
        let daemon = try Daemon()
        #expect(daemon.log.contains("config=\(daemon.configPath)") || daemon.log.contains("config: \(daemon.configPath)"),
                "\(daemon.log)")
    }
}

/// Commands print a short line for people by default and the daemon's answer with `--json`.
@Suite("CLI human output", .timeLimit(.minutes(1)))
struct CLIHumanOutputTests {
    func lines(_ daemon: Daemon, _ arguments: [String]) throws -> String {
        let process = try CLIRunTests.finished(daemon, arguments)
        #expect(process.exitCode == 0, "\(arguments): \(process.output)")
        return process.output
    }

    @Test func eachCommandSaysWhatHappenedInOneLine() throws {
        let daemon = try Daemon()
        let acquired = try lines(daemon, ["acquire", "--holder", "sh", "--ttl", "10s", "--model", "anthropic/claude-opus-4"])
        let token = String(acquired.prefix(32))
        #expect(acquired.hasPrefix(token + " fence 1 ttl 10s model anthropic/claude-opus-4 (primary)"), "\(acquired)")
        #expect(!acquired.contains("{"), "not JSON")
        #expect(try lines(daemon, ["heartbeat", token]) == "extended: ttl 10s\n")
        #expect(try lines(daemon, ["pause", "alpha"]) == "paused alpha\n")
        #expect(try lines(daemon, ["resume", "alpha"]) == "resumed alpha\n")
        #expect(try lines(daemon, ["resume", "alpha"]) == "resumed alpha (it was not paused)\n")
        #expect(try lines(daemon, ["throttle", "openai", "--retry-after", "30s"]) == "throttled openai for tenant local for 30s\n")
        #expect(try lines(daemon, ["report", "beta", "project-meta", "--no-success"]) == "beta: 1 failures in a row\n")
        #expect(try lines(daemon, ["record", "--model", "zai/glm-5", "--latency", "850ms", "--success", "--session", "s1",
                                   "--input-tokens", "10", "--output-tokens", "5"]) == "recorded\n")
        let usage = try lines(daemon, ["usage", "s1"])
        #expect(usage.hasPrefix("total: 1 messages, 10 in / 5 out tokens"), "\(usage)")
        let performance = try lines(daemon, ["performance"])
        #expect(performance.contains("MODEL") && performance.contains("zai/glm-5") && performance.contains("100%"), "\(performance)")
        #expect(try lines(daemon, ["reload"]) == "reloaded\n")
        #expect(try lines(daemon, ["release", token]).hasPrefix("released after "))
        let json = try lines(daemon, ["pause", "--json", "gamma"])
        #expect(json.hasPrefix("{") && json.contains(#""paused":true"#), "\(json)")
    }
}

/// `park` and `unpark` from the shell.
@Suite("CLI park and unpark", .timeLimit(.minutes(1)))
struct CLIParkTests {
    @Test func parkFreesTheCapacityAndUnparkTakesItBackWaitingLikeAcquire() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let token = try #require(try daemon.client().ask("acquire", [("detach", .bool(true)), ("workspace", .text("/w"))]).string("lease"))
        let parked = try CLIRunTests.finished(daemon, ["park", token])
        #expect(parked.exitCode == 0 && parked.output.hasPrefix("parked fence 1"), "\(parked.output)")
        let other = try #require(try daemon.client().ask("acquire", [("detach", .bool(true))]).string("lease"), "its capacity is free")
        let refused = try CLIRunTests.finished(daemon, ["unpark", "--wait", "0", token])
        #expect(refused.exitCode == 75, "\(refused.output)")
        #expect(try daemon.client().ask("release", [("lease", .text(other))]).ok)
        let unparked = try CLIRunTests.finished(daemon, ["unpark", token])
        #expect(unparked.exitCode == 0 && unparked.output.hasPrefix(token + " fence 1"), "the same token and fence: \(unparked.output)")
    }
}

/// A `turnstile run` waiting for a permit waits on across a daemon restart, SIGTERM or SIGKILL:
/// it connects again and asks again for what is left of its `--wait`, and COMMAND runs once.
@Suite("A waiting run across daemon restarts", .timeLimit(.minutes(1)))
struct WaitingRunRestartTests {
    @Test(arguments: ["SIGTERM", "SIGKILL"])
    func aWaitingRunSurvivesARestart(how: String) throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let token = try #require(try daemon.client().ask("acquire", [("detach", .bool(true)), ("ttl_ms", .integer(60_000))]).string("lease"))
        let marks = daemon.directory + "/ran"
        let waiter = try CLIRunTests.turnstile(daemon, ["run", "--holder", "waiter", "--", "sh", "-c", "echo ran >> \(marks)"])
        func waiting() throws -> Bool {
            let deadline = SocketStream.monotonicMilliseconds() + 10_000
            while SocketStream.monotonicMilliseconds() < deadline {
                let status = try daemon.client().ask("status")
                if status["global"]?.objectValue?["waiting"]?.numberValue?.int64 == 1 { return true }
            }
            return false
        }
        #expect(try waiting(), "the run waits behind the held permit")
        if how == "SIGTERM" { daemon.stop() } else { daemon.crash() }
        try daemon.start()
        #expect(try waiting(), "after the restart it waits again: \(waiter.output)")
        #expect(try daemon.client().ask("release", [("lease", .text(token))]).ok, "the restored lease is released")
        _ = waiter.waitForExit()
        #expect(waiter.exitCode == 0, "\(waiter.output)")
        #expect(try String(contentsOfFile: marks, encoding: .utf8) == "ran\n", "COMMAND ran once")
    }
}
