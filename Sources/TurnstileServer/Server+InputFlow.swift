import CLibUV
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// How much of one connection's input the loop takes in, and when (the session handles at
/// most `Session.linesPerTurn` lines per turn and says how the turn ended).
///
/// Fair turns: a connection with lines left over stops being read, and an idle handle gives
/// it its next turn on the next loop iteration, after the others had theirs. (libuv reads up
/// to 32 times from one stream per iteration; stopping the read inside the callback ends
/// that too.)
///
/// Backpressure: a connection whose unsent answers reach `outputHighWater` is not read until
/// it has taken half of them, so a client that pipelines without reading costs a bounded
/// amount of memory and then no CPU at all. One that stays blocked with no progress for
/// `stallMilliseconds` does not read its answers, and is cut off (protocol/PROTOCOL.md §2 and §12).
extension Server {
    /// How long a blocked connection may take none of its answers before it is cut off.
    static let stallMilliseconds: UInt64 = 2000

    /// Unsent answer bytes at which a connection's input stops being read.
    var outputHighWater: Int { min(65_536, session.config.server.maxOutputBytes / 2) }

    /// Bytes arrived: the session handles them within the connection's turn.
    func received(_ bytes: UnsafeBufferPointer<UInt8>, on connection: Connection) {
        guard let state = connection.state else { return }
        connection.updateTransportBytes()
        let outcome = session.receive(bytes, on: state, highWater: outputHighWater)
        turnEnded(connection, outcome, reading: true)
    }

    /// The idle handle's call, once per loop iteration while some connection has a backlog:
    /// each gets one more turn; those done read from their socket again. Idle callbacks run
    /// before the loop's poll, so the commit is asked for at once.
    func giveBacklogsATurn() {
        let queue = backlogged
        backlogged.removeAll(keepingCapacity: true)
        for connection in queue where !connection.outputBlocked {
            guard let state = connection.state else { continue }
            connection.updateTransportBytes()
            turnEnded(connection, session.resume(state, highWater: outputHighWater), reading: false)
        }
        requestCommit()
        if backlogged.isEmpty { uv_idle_stop(backlogTurns) }
    }

    /// After a turn: block on unsent output, or park the rest for the next turn, or read again.
    private func turnEnded(_ connection: Connection, _ outcome: Session.TurnOutcome, reading: Bool) {
        switch outcome {
        case .closing:
            if reading { uv_read_stop(connection.stream) }
        case .blocked:
            if reading { uv_read_stop(connection.stream) }
            connection.outputBlocked = true
            blocked[connection.id] = BlockedConnection(connection: connection, since: now, buffered: connection.bufferedBytes)
            startStallChecks()
        case .backlog:
            if reading { uv_read_stop(connection.stream) }
            backlogged.append(connection)
            uv_idle_start(backlogTurns, onBacklogTurn)
        case .readMore:
            if !reading { uv_read_start(connection.stream, onAllocate, onRead) }
        }
    }

    /// Some of a blocked connection's answers were written: once half are gone it takes its
    /// next turn; until then the progress restarts its stall clock.
    func outputProgressed(on connection: Connection) {
        guard connection.outputBlocked, let state = connection.state, state.phase == .open else { return }
        guard connection.bufferedBytes < outputHighWater / 2 else {
            blocked[connection.id] = BlockedConnection(connection: connection, since: now, buffered: connection.bufferedBytes)
            return
        }
        connection.outputBlocked = false
        blocked[connection.id] = nil
        if state.hasBacklog {
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
            guard !connection.isClosing else { continue }
            connection.updateTransportBytes()
            let buffered = connection.bufferedBytes
            if buffered < entry.buffered {
                blocked[connection.id] = BlockedConnection(connection: connection, since: at, buffered: buffered)
                continue
            }
            guard at.milliseconds(since: entry.since) >= Self.stallMilliseconds else { continue }
            blocked[connection.id] = nil
            logger.warning("cutting off a client that does not read its answers",
                           metadata: ["client": "\(connection.id)", "pid": "\(connection.state?.pid ?? 0)",
                                      "buffered": "\(buffered)", "stalled_ms": "\(Self.stallMilliseconds)"])
            closeNow(connection)
        }
        blocked = blocked.filter { !$0.value.connection.isClosing }
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
