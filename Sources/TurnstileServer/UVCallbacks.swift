#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore

// Every libuv callback of the daemon, as global functions (a C function pointer cannot
// capture context). Each finds the server through its loop's `data` and the object it
// concerns through its handle's `data`; nothing here owns anything except where it says so.

/// A client connected to the listening socket. The new pipe is owned by its `Connection`.
func onNewConnection(_ listener: UnsafeMutablePointer<uv_stream_t>?, _ status: Int32) {
    guard let listener else { return }
    Server.of(listener.pointee.loop).accept(from: listener, status: status)
}

/// libuv asks where to read: always the server's one read buffer (each read is consumed
/// before the next begins, so sharing is safe). The buffer is owned by the server.
func onAllocate(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int, _ buffer: UnsafeMutablePointer<uv_buf_t>?) {
    guard let handle, let buffer else { return }
    let server = Server.of(handle.pointee.loop)
    buffer.pointee = uv_buf_init(server.readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                                 UInt32(server.readBuffer.count))
}

/// Bytes (or EOF, or an error) arrived on a connection. `buffer` is the server's read buffer.
func onRead(_ stream: UnsafeMutablePointer<uv_stream_t>?, _ count: Int, _ buffer: UnsafePointer<uv_buf_t>?) {
    guard let stream, let data = uv_handle_get_data(UVHandle.handle(stream)) else { return }
    let connection = Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue()
    let server = Server.of(stream.pointee.loop)
    if count > 0, let base = buffer?.pointee.base {
        server.received(UnsafeBufferPointer(start: UnsafeRawPointer(base).assumingMemoryBound(to: UInt8.self), count: count),
                        on: connection)
    } else if count < 0 {
        server.inputEnded(on: connection, code: Int32(count))
    }
}

/// A `uv_write` finished. The request and its bytes are owned by the `WriteRequest`
/// retained in `data`, released here.
func onWriteDone(_ request: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
    guard let request, let data = request.pointee.data else { return }
    let write = Unmanaged<WriteRequest>.fromOpaque(data).takeRetainedValue()
    guard let connection = write.connection else { return }
    Server.of(request.pointee.handle.pointee.loop).writeFinished(on: connection, status: status)
}

/// A `uv_shutdown` (after the last answer of a closing connection) finished: linger until
/// the peer closes. The request was allocated by the server and is freed here.
func onShutdownDone(_ request: UnsafeMutablePointer<uv_shutdown_t>?, _ status: Int32) {
    guard let request else { return }
    if let stream = request.pointee.handle, let data = uv_handle_get_data(UVHandle.handle(stream)) {
        let connection = Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue()
        Server.of(stream.pointee.loop).linger(connection)
    }
    request.deallocate()
}

/// Input arriving on a lingering connection is thrown away; its end closes the connection.
func onLingerRead(_ stream: UnsafeMutablePointer<uv_stream_t>?, _ count: Int, _ buffer: UnsafePointer<uv_buf_t>?) {
    guard let stream, count < 0, let data = uv_handle_get_data(UVHandle.handle(stream)) else { return }
    let connection = Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue()
    Server.of(stream.pointee.loop).closeNow(connection)
}

/// The lingering connections' deadline check.
func onLingerCheck(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    Server.of(timer.pointee.loop).closeExpiredLingerers()
}

/// A connection's pipe is closed: free it and forget the connection.
func onConnectionClosed(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle, let data = uv_handle_get_data(handle) else { return }
    let connection = Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue()
    Server.of(handle.pointee.loop).connectionClosed(connection)
}

/// A handle allocated by the server (listener, signal, poll, timer) is closed: free it.
func onHandleClosedFree(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    handle?.deallocate()
}

/// The 10 s wait-progress round.
func onWaitProgress(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    Server.of(timer.pointee.loop).reportWaitProgress()
}

/// The 100 ms check of half-closed connections.
func onHalfClosedCheck(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    Server.of(timer.pointee.loop).checkHalfClosed()
}

/// The deadline timer fired: serve every deadline that has come.
func onDeadline(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    Server.of(timer.pointee.loop).deadlineReached()
}

/// The end of each loop turn: the commit (Server+Commit). Batching here gives one journal
/// write and one write per connection per turn, as Redis's beforeSleep does.
func onLoopTurnEnd(_ check: UnsafeMutablePointer<uv_check_t>?) {
    guard let check else { return }
    Server.of(check.pointee.loop).commit()
}

/// Does nothing: while active it only keeps the loop's poll from sleeping before the commit.
func onCommitSoon(_ idle: UnsafeMutablePointer<uv_idle_t>?) {}

/// Once per loop iteration while connections have lines left from their turn.
func onBacklogTurn(_ idle: UnsafeMutablePointer<uv_idle_t>?) {
    guard let idle else { return }
    Server.of(idle.pointee.loop).giveBacklogsATurn()
}

/// Every 250 ms while connections are blocked on their unsent answers.
func onStallCheck(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    Server.of(timer.pointee.loop).cutOffStalled()
}

/// SIGTERM or SIGINT stop the daemon; SIGHUP reloads its config.
func onSignal(_ handle: UnsafeMutablePointer<uv_signal_t>?, _ signal: Int32) {
    guard let handle else { return }
    let server = Server.of(handle.pointee.loop)
    if signal == SIGHUP {
        server.logger.info("SIGHUP: reloading the config")
        server.session.reload()
        server.requestCommit()
    } else {
        server.stop(reason: signal == SIGTERM ? "SIGTERM" : "SIGINT")
    }
}

/// A watched process's pidfd became readable: it exited. `data` holds the pid.
func onPeerProcessExit(_ poll: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
    guard let poll else { return }
    let pid = Int32(Int(bitPattern: uv_handle_get_data(UVHandle.handle(poll))))
    Server.of(poll.pointee.loop).processes.exited(pid)
}

/// A pid poll is closed (its pidfd was closed by the watcher just before): free the handle.
func onProcessPollClosed(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    handle?.deallocate()
}

/// Without pidfd: check the watched pids with kill(pid, 0).
func onProcessFallbackTick(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    Server.of(timer.pointee.loop).processes.pollFallback()
}

/// A member of a draining process group exited (`data` is its pid).
func onProcessGroupMemberExit(_ poll: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
    guard let poll else { return }
    let pid = Int32(Int(bitPattern: uv_handle_get_data(UVHandle.handle(poll))))
    Server.of(poll.pointee.loop).groups.memberExited(pid)
}

/// The periodic check of a draining process group (`data` is its pgid).
func onProcessGroupCheck(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    let pgid = Int32(Int(bitPattern: uv_handle_get_data(UVHandle.handle(timer))))
    Server.of(timer.pointee.loop).groups.check(pgid)
}

/// A draining process group's grace is over (`data` is its pgid).
func onProcessGroupKill(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    let pgid = Int32(Int(bitPattern: uv_handle_get_data(UVHandle.handle(timer))))
    Server.of(timer.pointee.loop).groups.killRemaining(pgid)
}

/// Something changed in the pause directory: rescan it.
func onPauseDirectoryChanged(_ handle: UnsafeMutablePointer<uv_fs_event_t>?, _ name: UnsafePointer<CChar>?,
                             _ events: Int32, _ status: Int32) {
    guard let handle else { return }
    let server = Server.of(handle.pointee.loop)
    server.session.syncPauseFlags()
    server.requestCommit()
}

/// The once-a-second pause directory rescan (a backstop for missed notifications).
func onPauseRescanTick(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    let server = Server.of(timer.pointee.loop)
    server.session.syncPauseFlags()
    server.reportStatusToSystemd()
    server.requestCommit()
}

/// The on_trip hook exited: log it and free the process handle.
func onTripHookExit(_ process: UnsafeMutablePointer<uv_process_t>?, _ status: Int64, _ signal: Int32) {
    guard let process else { return }
    Server.of(process.pointee.loop).tripHookExited(status: status, signal: signal)
    uv_close(UVHandle.handle(process), onHandleClosedFree)
}

/// Thread pool: write a snapshot file (temp, fsync, rename). `data` is the retained
/// `SnapshotJob`; only the job is touched here, never the server.
func onSnapshotWork(_ request: UnsafeMutablePointer<uv_work_t>?) {
    guard let request, let data = request.pointee.data else { return }
    Unmanaged<SnapshotJob>.fromOpaque(data).takeUnretainedValue().perform()
}

/// Back on the loop: the snapshot is written (or failed). Releases the job and the request.
func onSnapshotWritten(_ request: UnsafeMutablePointer<uv_work_t>?, _ status: Int32) {
    guard let request, let data = request.pointee.data else { return }
    let job = Unmanaged<SnapshotJob>.fromOpaque(data).takeRetainedValue()
    Server.of(request.pointee.loop).store.snapshotFinished(job)
    request.deallocate()
}
