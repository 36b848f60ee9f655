import CLibUV
import TurnstileCore
import TurnstileProtocol

/// How much of one connection's input the loop takes in, and when.
///
/// Fair turns: one loop turn handles at most `linesPerTurn` lines of any one connection. A
/// client pipelining thousands of requests in one read would otherwise hold the loop for
/// milliseconds while everyone else's answers wait; instead its unread lines stay in its
/// framer's backlog, its reading stops, and an idle handle gives it its next turn on the next
/// loop iteration, after the others had theirs. (libuv reads up to 32 times from one stream per
/// iteration; stopping the read inside the callback ends that too.)
///
/// Backpressure: a connection whose unsent answers reach `outputHighWater` is not read until
/// it has taken half of them, so a client that pipelines without reading costs a bounded
/// amount of memory and then no CPU at all. One that stays blocked with no progress for
/// `stallMilliseconds` does not read its answers, and is cut off (protocol/PROTOCOL.md §2 and §12).
extension Server {
    /// Lines one connection may have handled in one loop turn.
    static let linesPerTurn = 64
    /// How long a blocked connection may take none of its answers before it is cut off.
    static let stallMilliseconds: UInt64 = 2000

    /// Unsent answer bytes at which a connection's input stops being read.
    var outputHighWater: Int { min(65_536, settings.config.server.maxOutputBytes / 2) }

    /// Bytes arrived: frame them into lines and handle each, within the connection's turn.
    func received(_ bytes: UnsafeBufferPointer<UInt8>, on connection: Connection) {
        guard !connection.closing else { return }
        var budget = Self.linesPerTurn
        let highWater = outputHighWater
        let outcome = connection.framer.append(bytes) { line in
            handleInTurn(line, on: connection, budget: &budget, highWater: highWater)
        }
        framed(connection, outcome, reading: true)
    }

    /// The idle handle's call, once per loop iteration while some connection has a backlog:
    /// each gets one more turn; those done read from their socket again. Then the answers are
    /// flushed at once: idle callbacks run before the loop's poll, which would otherwise hold
    /// them until some other event.
    func giveBacklogsATurn() {
        let queue = backlogged
        backlogged.removeAll(keepingCapacity: true)
        for connection in queue where !connection.closing && !connection.outputBlocked {
            var budget = Self.linesPerTurn
            let highWater = outputHighWater
            let outcome = connection.framer.resume { line in
                handleInTurn(line, on: connection, budget: &budget, highWater: highWater)
            }
            framed(connection, outcome, reading: false)
        }
        requestCommit()
        if backlogged.isEmpty { uv_idle_stop(backlogTurns) }
    }

    /// Handles one line; whether the connection's turn goes on: not if it is used up, the
    /// connection is closing, or its unsent answers reached the high water.
    @inline(__always)
    private func handleInTurn(_ line: UnsafeBufferPointer<UInt8>, on connection: Connection, budget: inout Int,
                              highWater: Int) -> Bool {
        handleLine(line, on: connection)
        budget -= 1
        return !connection.closing && budget > 0 && connection.bufferedBytes < highWater
    }

    /// After a turn: answer an over-long line and close; or block on unsent output; or park
    /// the rest for the next turn; or read again.
    private func framed(_ connection: Connection, _ outcome: LineFramer.Outcome, reading: Bool) {
        guard !connection.closing else { return }
        if outcome == .lineTooLong {
            send(to: connection) { w in
                Answers.failure(&w, id: nil, code: .lineTooLong,
                                message: "line longer than \(LineFramer.lineBytesMax) bytes; closing the connection")
            }
            closeAfterFlush(connection)
            return
        }
        let mustBlock = connection.bufferedBytes >= outputHighWater
        if reading && (mustBlock || connection.framer.hasBacklog) { uv_read_stop(connection.stream) }
        if mustBlock {
            connection.outputBlocked = true
            blocked[connection.id] = BlockedConnection(connection: connection, since: now, buffered: connection.bufferedBytes)
            startStallChecks()
        } else if connection.framer.hasBacklog {
            backlogged.append(connection)
            uv_idle_start(backlogTurns, onBacklogTurn)
        } else if !reading {
            uv_read_start(connection.stream, onAllocate, onRead)
        }
    }

    /// Some of a blocked connection's answers were written: once half are gone it takes its
    /// next turn; until then the progress restarts its stall clock.
    func outputProgressed(on connection: Connection) {
        guard connection.outputBlocked, !connection.closing else { return }
        guard connection.bufferedBytes < outputHighWater / 2 else {
            blocked[connection.id] = BlockedConnection(connection: connection, since: now, buffered: connection.bufferedBytes)
            return
        }
        connection.outputBlocked = false
        blocked[connection.id] = nil
        if connection.framer.hasBacklog {
            backlogged.append(connection)
            uv_idle_start(backlogTurns, onBacklogTurn)
        } else {
            uv_read_start(connection.stream, onAllocate, onRead)
        }
    }

    private func startStallChecks() {
        guard stallTimer == nil else { return }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        uv_timer_start(timer, onStallCheck, 250, 250)
        stallTimer = timer
    }

    /// Cuts off blocked connections that took none of their answers for `stallMilliseconds`.
    /// Progress is any byte the kernel took since the last check, so a client reading a large
    /// answer slowly but steadily is never cut off in the middle of it.
    func cutOffStalled() {
        let at = now
        for entry in blocked.values {
            let connection = entry.connection
            guard !connection.closing else { continue }
            let buffered = connection.bufferedBytes
            if buffered < entry.buffered {
                blocked[connection.id] = BlockedConnection(connection: connection, since: at, buffered: buffered)
                continue
            }
            guard at.milliseconds(since: entry.since) >= Self.stallMilliseconds else { continue }
            blocked[connection.id] = nil
            logger.warning("cutting off a client that does not read its answers",
                           metadata: ["client": "\(connection.id)", "pid": "\(connection.pid)",
                                      "buffered": "\(buffered)", "stalled_ms": "\(Self.stallMilliseconds)"])
            connection.output.removeAll(keepingCapacityUpTo: 1024)
            closeNow(connection)
        }
        blocked = blocked.filter { !$0.value.connection.closing }
        if blocked.isEmpty, let timer = stallTimer {
            uv_close(UVHandle.handle(timer), onHandleClosedFree)
            stallTimer = nil
        }
        requestCommit()
    }
}

/// A connection whose input is not read until its unsent answers drain: when it last made
/// progress, and how many bytes it held then (fewer later is progress).
struct BlockedConnection {
    let connection: Connection
    let since: Instant
    let buffered: Int
}
