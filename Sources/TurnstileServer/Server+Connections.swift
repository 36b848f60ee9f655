#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// Owns a `uv_write_t` and the bytes it writes until libuv is done with them.
final class WriteRequest {
    let request: UnsafeMutablePointer<uv_write_t> = .allocate(capacity: 1)
    var bytes: [UInt8]
    weak var connection: Connection?

    init(bytes: [UInt8], connection: Connection) {
        self.bytes = bytes
        self.connection = connection
    }

    deinit { request.deallocate() }
}

extension Server {
    /// Accepts a connection, checks who it is (SO_PEERCRED), has the session open it, and
    /// starts reading (unless the session refused it: then its one answer is written and it
    /// closes at the commit).
    func accept(from listener: UnsafeMutablePointer<uv_stream_t>, status: Int32) {
        guard status >= 0 else {
            logger.warning("accept failed", metadata: ["error": "\(uvErrorText(status))"])
            return
        }
        let connection = Connection(id: ClientID(nextClientSerial))
        nextClientSerial += 1
        uv_pipe_init(loop, connection.pipe, 0)
        uv_handle_set_data(UVHandle.handle(connection.pipe), Unmanaged.passUnretained(connection).toOpaque())
        connections[connection.id] = connection
        guard uv_accept(listener, connection.stream) == 0 else {
            closeNow(connection)
            return
        }
        var fd: uv_os_fd_t = -1
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        var credentials: PeerCredentials?
        if uv_fileno(UVHandle.handle(connection.pipe), &fd) == 0, turnstile_peer_credentials(fd, &uid, &gid, &pid) == 0 {
            credentials = PeerCredentials(uid: uid, gid: gid, pid: pid)
        }
        let overCapacity = connections.count - lingering.count > session.config.server.maxConnections
        let state = session.open(connection.id, credentials: credentials, overCapacity: overCapacity)
        connection.state = state
        state.transport = Unmanaged.passUnretained(connection).toOpaque()
        if state.phase == .open { uv_read_start(connection.stream, onAllocate, onRead) }
        requestCommit()
    }

    /// The peer stopped sending (EOF) or the connection failed.
    func inputEnded(on connection: Connection, code: Int32) {
        uv_read_stop(connection.stream)
        guard code == Int32(UV_EOF.rawValue), let state = connection.state else { return closeNow(connection) }
        session.inputEnded(on: state, peerGone: peerHasClosed(connection))
        if state.phase == .halfClosed {
            halfClosed[connection.id] = connection
            startHalfClosedChecks()
        }
    }

    /// Whether the peer closed its socket entirely (not just its sending side): Linux reports
    /// POLLHUP on a Unix stream socket only when both directions are shut.
    func peerHasClosed(_ connection: Connection) -> Bool {
        var fd: uv_os_fd_t = -1
        guard uv_fileno(UVHandle.handle(connection.pipe), &fd) == 0 else { return true }
        var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        return poll(&entry, 1, 0) > 0 && entry.revents & Int16(POLLHUP | POLLERR) != 0
    }

    /// Half-closed connections are checked every 100 ms: a waiter whose process died after
    /// half-closing must not keep its place in the queue.
    private func startHalfClosedChecks() {
        guard halfClosedTimer == nil else { return }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        uv_timer_start(timer, onHalfClosedCheck, 100, 100)
        halfClosedTimer = timer
    }

    /// The half-closed check: close those whose peer is gone or that finished; stop when none
    /// is left.
    func checkHalfClosed() {
        for connection in halfClosed.values where connection.state?.phase != .halfClosed || peerHasClosed(connection) {
            halfClosed[connection.id] = nil
            if connection.state?.phase == .halfClosed { closeNow(connection) }
        }
        if halfClosed.isEmpty, let timer = halfClosedTimer {
            uv_close(UVHandle.handle(timer), onHandleClosedFree)
            halfClosedTimer = nil
        }
        requestCommit()
    }

    /// Hands a connection's session output to the kernel: `uv_try_write` first, the rest to
    /// one `uv_write`.
    func flush(_ connection: Connection) {
        guard let state = connection.state, !connection.writing, !state.output.isEmpty, !connection.isClosing else {
            finishClosingIfFlushed(connection)
            return
        }
        let written: Int32 = state.output.withBytes { bytes in
            var buffer = uv_buf_init(UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: CChar.self)),
                                     UInt32(bytes.count))
            return uv_try_write(connection.stream, &buffer, 1)
        }
        if written == Int32(state.output.count) {
            state.output.removeAll(keepingCapacityUpTo: 65_536)
            finishClosingIfFlushed(connection)
            outputProgressed(on: connection)
            return
        }
        guard written >= 0 || written == Int32(UV_EAGAIN.rawValue) else {
            state.output.removeAll(keepingCapacityUpTo: 1024)
            closeNow(connection)
            return
        }
        let rest = state.output.withBytes { Array($0[Int(max(written, 0))...]) }
        state.output.removeAll(keepingCapacityUpTo: 65_536)
        let write = WriteRequest(bytes: rest, connection: connection)
        write.request.pointee.data = Unmanaged.passRetained(write).toOpaque()
        connection.writing = true
        let status: Int32 = write.bytes.withUnsafeMutableBytes { bytes in
            var buffer = uv_buf_init(bytes.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
            return uv_write(write.request, connection.stream, &buffer, 1, onWriteDone)
        }
        if status < 0 {
            Unmanaged<WriteRequest>.fromOpaque(write.request.pointee.data).release()
            connection.writing = false
            closeNow(connection)
            return
        }
        connection.updateTransportBytes()
        if written > 0 { outputProgressed(on: connection) }
    }

    /// A queued write finished.
    func writeFinished(on connection: Connection, status: Int32) {
        connection.writing = false
        connection.updateTransportBytes()
        guard status >= 0 else {
            closeNow(connection)
            return
        }
        // The rest of its output leaves at this turn's commit, after the turn's records.
        flushSoon.append(connection)
        outputProgressed(on: connection)
        requestCommit()
    }

    /// Writes every connection with output: those the session listed, then those whose
    /// earlier write finished.
    func flushAll() {
        session.takeFlushes(into: &flushBuffer)
        for state in flushBuffer {
            guard let transport = state.transport else { continue }
            flush(Unmanaged<Connection>.fromOpaque(transport).takeUnretainedValue())
        }
        while !flushSoon.isEmpty {
            let queue = flushSoon
            flushSoon.removeAll(keepingCapacity: true)
            for connection in queue { flush(connection) }
        }
    }

    /// Performs the closes the session decided.
    func performCloses() {
        guard !session.outbox.closes.isEmpty else { return }
        let closes = session.outbox.closes
        session.outbox.closes.removeAll(keepingCapacity: true)
        for (id, kind) in closes {
            guard let connection = connections[id] else { continue }
            switch kind {
            case .now: closeNow(connection)
            case .afterFlush: closeAfterFlush(connection)
            }
        }
    }

    /// Closes at once: the session releases its bound leases and drops its waiters.
    func closeNow(_ connection: Connection) {
        guard !connection.isClosing else { return }
        lingering[connection.id] = nil
        uv_close(UVHandle.handle(connection.pipe), onConnectionClosed)
        if let state = connection.state { session.transportClosed(state) }
        requestCommit()
    }

    /// Stops reading and closes once the queued answers are written.
    func closeAfterFlush(_ connection: Connection) {
        guard !connection.closingAfterFlush, !connection.isClosing else { return }
        connection.closingAfterFlush = true
        uv_read_stop(connection.stream)
        if let state = connection.state { session.transportClosed(state) }
        flush(connection)
    }

    /// After the last byte of a closing connection: shut down, then close.
    private func finishClosingIfFlushed(_ connection: Connection) {
        guard connection.closingAfterFlush, !connection.writing, connection.state?.output.isEmpty ?? true,
              !connection.isClosing else { return }
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        if uv_shutdown(request, connection.stream, onShutdownDone) != 0 {
            request.deallocate()
            uv_close(UVHandle.handle(connection.pipe), onConnectionClosed)
        }
    }

    /// After the last answer of a closing connection is sent and our side shut down, keep
    /// reading (and discarding) until the peer closes, for at most two seconds: closing with
    /// unread input makes the peer's next write fail before it reads our last answer (an
    /// "lingering close", as HTTP servers do).
    func linger(_ connection: Connection) {
        guard !connection.isClosing else { return }
        guard uv_read_start(connection.stream, onAllocate, onLingerRead) == 0 else { return closeNow(connection) }
        lingering[connection.id] = (connection, now.adding(milliseconds: 2000))
        if lingerTimer == nil {
            let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
            uv_timer_init(loop, timer)
            uv_timer_start(timer, onLingerCheck, 250, 250)
            lingerTimer = timer
        }
    }

    /// Closes lingering connections whose two seconds are up.
    func closeExpiredLingerers() {
        let at = now
        for (connection, deadline) in lingering.values where deadline <= at { closeNow(connection) }
        if lingering.isEmpty, let timer = lingerTimer {
            uv_close(UVHandle.handle(timer), onHandleClosedFree)
            lingerTimer = nil
        }
    }

    /// The pipe is closed: forget the connection and free the pipe.
    func connectionClosed(_ connection: Connection) {
        connections[connection.id] = nil
        halfClosed[connection.id] = nil
        lingering[connection.id] = nil
        blocked[connection.id] = nil
        if let state = connection.state {
            state.transport = nil
            session.forget(state)
        }
        connection.pipe.deallocate()
    }
}
