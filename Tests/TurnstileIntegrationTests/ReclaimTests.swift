import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// protocol/PROTOCOL.md §10: a lease never outlives its holder. Real client processes are killed; the slot
/// comes back and the next waiter gets it.
@Suite("Reclaim and wake-ups", .timeLimit(.minutes(1)))
struct ReclaimTests {
    /// A python3 client that sends `request` on `socket` and prints every line it receives,
    /// then waits to be killed.
    static func pythonHolder(socket: String, request: String) throws -> ChildProcess {
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            s.sendall((sys.argv[2] + "\\n").encode())
            f = s.makefile("r")
            for line in f:
                print(line.strip(), flush=True)
            """
        return try ChildProcess(["/usr/bin/python3", "-c", script, socket, request])
    }

    /// Watch events until one named `name` with `cause` (if given) arrives.
    static func waitForRelease(_ watcher: TurnstileClient, cause: String) throws -> JSONObject? {
        while let event = try watcher.waitForEvent("released") {
            if event["cause"]?.stringValue == cause { return event }
        }
        return nil
    }

    @Test func aHolderKilledWithSIGKILLLosesItsLeaseAtOnce() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let holder = try Self.pythonHolder(socket: daemon.socketPath, request: #"{"id":1,"op":"acquire","holder":"py"}"#)
        #expect(holder.waitForOutput(#""ok":true"#))
        let waiter = try daemon.client()
        let waitID = try waiter.send("acquire", [("wait_ms", .integer(30_000))])
        holder.signal(SIGKILL)
        let released = try Self.waitForRelease(watcher, cause: "disconnected")
        #expect(released?["holder"]?.stringValue == "py")
        #expect(try waiter.answer(to: waitID, timeoutMilliseconds: 10_000).ok, "the next waiter is granted")
    }

    @Test func aWaiterKilledLeavesTheQueue() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        let held = try client.ask("acquire")
        let waiter = try Self.pythonHolder(socket: daemon.socketPath,
                                           request: #"{"id":1,"op":"acquire","wait_ms":60000,"notify":true}"#)
        #expect(waiter.waitForOutput(#""event":"queued""#))
        #expect(try client.ask("status")["global"]?.objectValue?["waiting"]?.numberValue?.int64 == 1)
        waiter.signal(SIGKILL)
        _ = waiter.waitForExit()
        var waiting: Int64? = 1
        for _ in 0..<1000 where waiting != 0 {
            waiting = try client.ask("status")["global"]?.objectValue?["waiting"]?.numberValue?.int64
        }
        #expect(waiting == 0)
        _ = try client.ask("release", [("lease", held["lease"]!)])
        #expect(try client.ask("acquire").ok, "nothing was granted to the dead waiter")
    }

    @Test func aPidBoundLeaseIsReleasedWhenItsProcessDies() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let sleeper = try ChildProcess(["sleep", "600"])
        let client = try daemon.client()
        let lease = try client.ask("acquire", [("detach", .bool(true)), ("pid", .integer(sleeper.pid)), ("holder", .text("sleeper"))])
        #expect(lease.ok)
        let waitID = try client.send("acquire", [("wait_ms", .integer(30_000))])
        sleeper.signal(SIGKILL)
        let released = try Self.waitForRelease(watcher, cause: "process_exited")
        #expect(released?["holder"]?.stringValue == "sleeper")
        #expect(try client.answer(to: waitID, timeoutMilliseconds: 10_000).ok)
    }

    /// Without pidfd (`--process-watch poll`, what the daemon falls back to where pidfd is
    /// missing) a death is still seen, even while the dead process is an uncollected zombie:
    /// the test does not reap the sleeper it kills.
    @Test func aPidBoundLeaseIsReleasedWhenItsProcessDiesWithoutPidfd() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n", extraArguments: ["--process-watch", "poll"])
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let sleeper = try ChildProcess(["sleep", "600"])
        let client = try daemon.client()
        #expect(try client.ask("acquire", [("detach", .bool(true)), ("pid", .integer(sleeper.pid)),
                                           ("holder", .text("sleeper"))]).ok)
        let waitID = try client.send("acquire", [("wait_ms", .integer(30_000))])
        sleeper.signal(SIGKILL)
        let released = try Self.waitForRelease(watcher, cause: "process_exited")
        #expect(released?["holder"]?.stringValue == "sleeper")
        #expect(try client.answer(to: waitID, timeoutMilliseconds: 10_000).ok)
        #expect(daemon.logShows("checking holder processes every 100 ms"))
        _ = sleeper.waitForExit()
    }

    /// A pid or pgid that names no live process is refused, never a grant that vanishes.
    @Test func aDeadPidOrGroupIsABadRequestAndTakesNothing() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1")
        let short = try ChildProcess(["true"])
        _ = short.waitForExit()
        let client = try daemon.client()
        let byPid = try client.ask("acquire", [("detach", .bool(true)), ("pid", .integer(short.pid))])
        #expect(byPid.error == "bad_request" && byPid.string("field") == "pid", "\(byPid)")
        let byGroup = try client.ask("acquire", [("pgid", .integer(short.pid))])
        #expect(byGroup.error == "bad_request" && byGroup.string("field") == "pgid", "\(byGroup)")
        let held = try client.ask("acquire")
        #expect(held.ok, "the refused acquires took no slot")
        let attach = try client.ask("attach", [("lease", .text(held.string("lease")!)), ("pgid", .integer(short.pid))])
        #expect(attach.error == "bad_request" && attach.string("field") == "pgid")
    }

    @Test func aSilentLeaseExpiresWithAnEventToItsHolder() throws {
        let daemon = try Daemon()
        let watcher = try daemon.client()
        _ = try watcher.ask("watch")
        let client = try daemon.client()
        let lease = try client.ask("acquire", [("ttl_ms", .integer(300))])
        let event = try client.event()
        #expect(event?["event"]?.stringValue == "expired")
        #expect(event?["lease"] == lease["lease"])
        #expect(event?["fence"] == lease["fence"])
        let watched = try watcher.waitForEvent("expired")
        #expect(watched?["fence"] == lease["fence"] && watched?["lease"] == nil)
        #expect(try client.ask("heartbeat", [("lease", lease["lease"]!)]).error == "not_found")
    }

    @Test func heartbeatsKeepALeaseAlive() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let lease = try client.ask("acquire", [("ttl_ms", .integer(400))])
        for _ in 0..<6 {
            #expect(try client.nextEvent(timeoutMilliseconds: 150) == nil)
            #expect(try client.ask("heartbeat", [("lease", lease["lease"]!)]).ok)
        }
    }

    @Test func waitersWakeOnDisconnect() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let holder = try daemon.client()
        _ = try holder.ask("acquire")
        let waiter = try daemon.client()
        let id = try waiter.send("acquire", [("wait_ms", .integer(30_000))])
        holder.close()
        #expect(try waiter.answer(to: id, timeoutMilliseconds: 10_000).ok)
    }

    @Test func waitersWakeOnExpiry() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let holder = try daemon.client()
        _ = try holder.ask("acquire", [("ttl_ms", .integer(200))])
        let waiter = try daemon.client()
        let answer = try waiter.ask("acquire", [("wait_ms", .integer(30_000))])
        #expect(answer.ok && answer.int("waited_ms")! >= 100)
    }

    @Test func waitersWakeOnResume() throws {
        let daemon = try Daemon()
        let admin = try daemon.client()
        _ = try admin.ask("pause", [("project", .text("alpha"))])
        let waiter = try daemon.client()
        let id = try waiter.send("acquire", [("project", .text("alpha")), ("wait_ms", .integer(30_000)), ("notify", .bool(true))])
        #expect(try waiter.event()?["reason"]?.stringValue == "paused")
        _ = try admin.ask("resume", [("project", .text("alpha"))])
        #expect(try waiter.answer(to: id, timeoutMilliseconds: 10_000).ok)
    }

    @Test func waitersWakeWhenAThrottleEnds() throws {
        let daemon = try Daemon()
        let admin = try daemon.client()
        _ = try admin.ask("throttle", [("provider", .text("github")), ("retry_after_ms", .integer(300))])
        let answer = try admin.ask("acquire", [("providers", .strings(["github"])), ("wait_ms", .integer(30_000))])
        #expect(answer.ok && answer.int("waited_ms")! >= 200)
    }

    @Test func waitersWakeOnReload() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        _ = try client.ask("acquire")
        let id = try client.send("acquire", [("wait_ms", .integer(30_000))])
        try daemon.writeConfig("[limits]\nglobal = 2\n")
        #expect(try client.ask("reload").ok)
        #expect(try client.answer(to: id, timeoutMilliseconds: 10_000).ok)
    }

    @Test func aWaitTimesOutWithItsLastReason() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let client = try daemon.client()
        _ = try client.ask("acquire")
        let answer = try client.ask("acquire", [("wait_ms", .integer(200))])
        #expect(answer.error == "timeout")
        #expect(answer.string("reason") == "global")
        #expect(answer.int("limit") == 1 && answer.int("in_use") == 1)
    }

    @Test func aRefusalNamesItsReasonAtOnce() throws {
        let daemon = try Daemon(config: "[limits]\ntime = 0\n")
        let answer = try daemon.client().ask("acquire", [("mode", .text("time"))])
        #expect(answer.error == "unavailable" && answer.string("reason") == "mode")
        #expect(answer.int("limit") == 0 && answer.int("in_use") == 0)
    }
}
