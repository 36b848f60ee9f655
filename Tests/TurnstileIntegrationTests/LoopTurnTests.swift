import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// The loop's turn: what the daemon read counts before what its timers say, a client reading a
/// large answer steadily keeps its connection, and a last line without `\n` is answered
/// (protocol/PROTOCOL.md, "Framing" and "Flow control").
@Suite("Loop turns and slow readers", .timeLimit(.minutes(2)))
struct LoopTurnTests {
    /// Waits until CLOCK_MONOTONIC reaches `instant` (milliseconds): the event a test waits for
    /// when what it needs is time to have passed on a stopped daemon.
    func waitUntil(_ instant: Int64) {
        while SocketStream.monotonicMilliseconds() < instant {
            var entry = pollfd(fd: -1, events: 0, revents: 0)
            _ = poll(&entry, 1, Int32(clamping: instant - SocketStream.monotonicMilliseconds()))
        }
    }

    @Test func aHeartbeatSentInTimeSurvivesAStalledLoop() throws {
        let daemon = try Daemon()
        let holder = try daemon.client()
        let granted = try holder.ask("acquire", [("ttl_ms", .integer(3000))])
        #expect(granted.ok)
        let grantedAt = SocketStream.monotonicMilliseconds()
        let daemonPid = daemon.process!.pid
        // The daemon stops (a stalled loop); the heartbeat is sent well inside the ttl and
        // waits in the socket; the daemon resumes only after the lease's deadline.
        kill(daemonPid, SIGSTOP)
        let id = try holder.send("heartbeat", [("lease", granted["lease"]!)])
        let sentAt = SocketStream.monotonicMilliseconds()
        waitUntil(grantedAt + 3_500)
        kill(daemonPid, SIGCONT)
        let answer = try holder.answer(to: id, timeoutMilliseconds: 10_000)
        #expect(answer.ok, "the heartbeat was sent \(grantedAt + 3000 - sentAt) ms before the deadline: \(answer.object)")
        let status = try daemon.client().ask("status")
        #expect(status["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 1)
    }

    @Test func aLastLineWithoutNewlineIsAnswered() throws {
        let daemon = try Daemon()
        let input = daemon.directory + "/unterminated"
        try #"{"id":7,"op":"hello"}"#.write(toFile: input, atomically: true, encoding: .utf8)
        let fd = open(input, O_RDONLY)
        defer { close(fd) }
        let client = try ChildProcess(["/usr/bin/socat", "-t", "5", "-", "UNIX-CONNECT:" + daemon.socketPath], stdin: fd)
        #expect(client.waitForExit() == 0)
        #expect(client.output.contains(#""server":"turnstiled""#), "\(client.output)")
    }

    /// A client reading a multi-megabyte `status` at a steady ~300 KB/s through a small socket
    /// buffer is slower than the stall cut-off on the whole answer, but never stalls: it keeps
    /// its connection and its bound lease.
    @Test func aSteadySlowReaderOfALargeAnswerIsNotCutOff() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 20000\n[server]\nmax_leases_per_connection = 20000\n")
        let filler = try daemon.client()
        let batch = 500
        for _ in 0..<16 {
            var ids: [Int] = []
            for _ in 0..<batch { ids.append(try filler.send("acquire", [("detach", .bool(true)), ("holder", .text("filler"))])) }
            for id in ids { #expect(try filler.answer(to: id, timeoutMilliseconds: 10_000).ok) }
        }
        let reader = try RawConnection(daemon)
        var small: Int32 = 8192
        setsockopt(reader.stream.descriptor, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        try reader.send(#"{"id":1,"op":"acquire","holder":"slow reader"}"# + "\n")
        let lease = try #require(try reader.receive()?["lease"]?.stringValue)
        try reader.send(#"{"id":2,"op":"status"}"# + "\n")
        var received = 0
        var chunk = [UInt8](repeating: 0, count: 4096)
        var line: [UInt8] = []
        let started = SocketStream.monotonicMilliseconds()
        var next = started
        while line.last != 0x0A {
            next += 13
            waitUntil(next)
            let count = read(reader.stream.descriptor, &chunk, chunk.count)
            guard count > 0 else { break }
            received += count
            line.append(contentsOf: chunk[0..<count])
        }
        let elapsed = SocketStream.monotonicMilliseconds() - started
        #expect(line.last == 0x0A, "the whole answer arrived (\(received) bytes)")
        #expect(received > 1_500_000)
        #expect(elapsed > 3_000, "the read took longer than the 2 s stall cut-off (\(elapsed) ms)")
        try reader.send(#"{"id":3,"op":"heartbeat","lease":"\#(lease)"}"# + "\n")
        let heartbeat = try #require(try reader.receive())
        #expect(heartbeat["ok"]?.boolValue == true, "the connection and its lease survived: \(heartbeat)")
    }
}
