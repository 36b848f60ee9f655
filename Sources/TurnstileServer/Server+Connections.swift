#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore
import TurnstileProtocol

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
    /// Accepts a connection, checks who it is (SO_PEERCRED), and starts reading.
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
        if uv_fileno(UVHandle.handle(connection.pipe), &fd) == 0, turnstile_peer_credentials(fd, &uid, &gid, &pid) == 0 {
            connection.credentials = PeerCredentials(uid: uid, gid: gid, pid: pid)
        }
        connection.rights = PeerRights.of(connection.credentials, access: settings.config.access, daemonUID: getuid())
        if connection.rights == .none {
            guard let credentials = connection.credentials else {
                logger.warning("refused a connection whose peer credentials cannot be read")
                refuse(connection, code: .forbidden, message: "this turnstiled cannot read your credentials (SO_PEERCRED)")
                return
            }
            logger.warning("refused a connection",
                           metadata: ["uid": "\(credentials.uid)", "gid": "\(credentials.gid)", "pid": "\(credentials.pid)"])
            refuse(connection, code: .forbidden, message: "uid \(credentials.uid) may not connect to this turnstiled")
            return
        }
        if connections.count - lingering.count > settings.config.server.maxConnections {
            logger.warning("too many connections", metadata: ["limit": "\(settings.config.server.maxConnections)"])
            refuse(connection, code: .tooMany, message: "too many connections (limit \(settings.config.server.maxConnections))")
            return
        }
        uv_read_start(connection.stream, onAllocate, onRead)
    }

    /// Answers one error line and closes.
    func refuse(_ connection: Connection, code: ErrorCode, message: String) {
        Answers.failure(&connection.output, id: nil, code: code, message: message)
        closeAfterFlush(connection)
    }

    /// The peer stopped sending (EOF) or the connection failed.
    func inputEnded(on connection: Connection, code: Int32) {
        uv_read_stop(connection.stream)
        guard code == Int32(UV_EOF.rawValue) else { return closeNow(connection) }
        connection.framer.finish { line in
            handleLine(line, on: connection)
            return true
        }
        guard !connection.closing else { return }
        if peerHasClosed(connection) { return closeNow(connection) }
        guard !connection.pending.isEmpty else { return closeAfterFlush(connection) }
        // Half-closed with requests still waiting (`echo … | socat`): answer them, then
        // close; meanwhile check that the peer is still there.
        connection.inputClosed = true
        halfClosed[connection.id] = connection
        startHalfClosedChecks()
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

    /// The half-closed check: close those whose peer is gone; stop when none is left.
    func checkHalfClosed() {
        for connection in halfClosed.values where connection.closing || peerHasClosed(connection) {
            halfClosed[connection.id] = nil
            closeNow(connection)
        }
        halfClosed = halfClosed.filter { !$0.value.closing }
        if halfClosed.isEmpty, let timer = halfClosedTimer {
            uv_close(UVHandle.handle(timer), onHandleClosedFree)
            halfClosedTimer = nil
        }
        requestCommit()
    }

    /// Queues an answer or event for a connection (flushed at the end of the iteration). A
    /// connection already holding more than `max_output_bytes` unsent is cut off instead: one
    /// answer, however large (a status of ten thousand leases), always goes out whole.
    func send(to connection: Connection, _ write: (inout JSONWriter) -> Void) {
        guard !connection.closing else { return }
        if connection.bufferedBytes > settings.config.server.maxOutputBytes {
            logger.warning("cutting off a client that does not read its answers",
                           metadata: ["client": "\(connection.id)", "pid": "\(connection.pid)",
                                      "buffered": "\(connection.bufferedBytes)"])
            connection.output.removeAll(keepingCapacityUpTo: 1024)
            closeNow(connection)
            return
        }
        write(&connection.output)
        scheduleFlush(connection)
    }

    func scheduleFlush(_ connection: Connection) {
        if !connection.queuedForFlush {
            connection.queuedForFlush = true
            flushQueue.append(connection)
        }
    }

    /// Hands queued bytes to the kernel: `uv_try_write` first, the rest to one `uv_write`.
    func flush(_ connection: Connection) {
        connection.queuedForFlush = false
        guard !connection.writing, !connection.output.isEmpty, uv_is_closing(UVHandle.handle(connection.pipe)) == 0 else {
            finishClosingIfFlushed(connection)
            return
        }
        let written: Int32 = connection.output.withBytes { bytes in
            var buffer = uv_buf_init(UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: CChar.self)),
                                     UInt32(bytes.count))
            return uv_try_write(connection.stream, &buffer, 1)
        }
        if written == Int32(connection.output.count) {
            connection.output.removeAll(keepingCapacityUpTo: 65_536)
            finishClosingIfFlushed(connection)
            outputProgressed(on: connection)
            return
        }
        guard written >= 0 || written == Int32(UV_EAGAIN.rawValue) else {
            connection.output.removeAll(keepingCapacityUpTo: 1024)
            closeNow(connection)
            return
        }
        let rest = connection.output.withBytes { Array($0[Int(max(written, 0))...]) }
        connection.output.removeAll(keepingCapacityUpTo: 65_536)
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
        } else if written > 0 {
            outputProgressed(on: connection)
        }
    }

    /// A queued write finished.
    func writeFinished(on connection: Connection, status: Int32) {
        connection.writing = false
        guard status >= 0 else {
            closeNow(connection)
            return
        }
        // The rest of its output leaves at this turn's commit, after the turn's records.
        scheduleFlush(connection)
        outputProgressed(on: connection)
    }

    /// Flushes every queued connection.
    func flushAll() {
        while !flushQueue.isEmpty {
            let queue = flushQueue
            flushQueue.removeAll(keepingCapacity: true)
            for connection in queue { flush(connection) }
        }
    }

    /// Closes at once: its bound leases are released and its waiters dropped.
    func closeNow(_ connection: Connection) {
        guard uv_is_closing(UVHandle.handle(connection.pipe)) == 0 else { return }
        lingering[connection.id] = nil
        let wasOpen = !connection.closing
        connection.closing = true
        watchers[connection.id] = nil
        uv_close(UVHandle.handle(connection.pipe), onConnectionClosed)
        if wasOpen { releaseHoldings(of: connection) }
    }

    /// Stops reading and closes once the queued answers are written.
    func closeAfterFlush(_ connection: Connection) {
        guard !connection.closing else { return }
        connection.closing = true
        watchers[connection.id] = nil
        uv_read_stop(connection.stream)
        releaseHoldings(of: connection)
        scheduleFlush(connection)
    }

    /// Tells the broker the connection is gone (unless the daemon is stopping: then its
    /// leases are saved and restored, not released).
    private func releaseHoldings(of connection: Connection) {
        guard !stopping else { return }
        connection.pending.removeAll()
        connection.pendingByKey.removeAll()
        broker.disconnect(connection.id, now: now)
        processEffects()
    }

    /// After the last byte of a closing connection: shut down, then close.
    private func finishClosingIfFlushed(_ connection: Connection) {
        guard connection.closing, !connection.writing, connection.output.isEmpty,
              uv_is_closing(UVHandle.handle(connection.pipe)) == 0 else { return }
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
        guard uv_is_closing(UVHandle.handle(connection.pipe)) == 0 else { return }
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
        watchers[connection.id] = nil
        halfClosed[connection.id] = nil
        lingering[connection.id] = nil
        blocked[connection.id] = nil
        connection.pipe.deallocate()
    }

    /// A half-closed connection answered its last pending request: close it.
    func closeIfDone(_ connection: Connection) {
        if connection.inputClosed && connection.pending.isEmpty { closeAfterFlush(connection) }
    }
}

extension Server {
    /// After a reload: every open connection's rights are decided again from the new access
    /// table. A peer that may no longer connect is told `forbidden` and closed (its bound
    /// leases released, as on any disconnect); one that lost admin keeps only the client ops.
    func reviewRights() {
        let access = settings.config.access
        let owner = getuid()
        for connection in connections.values where !connection.closing && connection.rights != .none {
            let rights = PeerRights.of(connection.credentials, access: access, daemonUID: owner)
            guard rights != connection.rights else { continue }
            logger.info("rights changed by a reload", metadata: [
                "client": "\(connection.id)", "uid": "\(connection.uid)", "from": "\(connection.rights)", "to": "\(rights)"])
            connection.rights = rights
            if rights == .none {
                refuse(connection, code: .forbidden, message: "uid \(connection.uid) may no longer connect to this turnstiled")
            }
        }
    }
}
