#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore

/// Watches the processes leases are bound to, so a holder's death frees its slot at once:
/// a pidfd per process, polled by the loop (readable = exited). Where pidfd is unavailable
/// (kernels before 5.3, some sandboxes), or when `--process-watch poll` asks for it, it checks
/// every 100 ms whether each process still runs, and says so in the log.
final class ProcessWatch {
    private unowned let server: Server
    /// Live watches: pid → (poll handle, pidfd).
    private var polls: [Int32: (poll: UnsafeMutablePointer<uv_poll_t>, fd: Int32)] = [:]
    /// Pids watched by the fallback.
    private var fallbackPids: Set<Int32> = []
    private var fallbackTimer: UnsafeMutablePointer<uv_timer_t>?
    /// Pids found already dead when a watch began; the server feeds them to the broker.
    private var exitedBeforeWatch: [Int32] = []

    init(server: Server) {
        self.server = server
    }

    /// Starts watching a process.
    func watch(_ pid: Int32) {
        guard polls[pid] == nil, !fallbackPids.contains(pid) else { return }
        if server.settings.processWatch == .poll {
            if Self.isGone(pid) {
                exitedBeforeWatch.append(pid)
            } else {
                startFallback(pid, reason: nil)
            }
            return
        }
        let fd = turnstile_pidfd_open(pid)
        if fd == -ESRCH {
            exitedBeforeWatch.append(pid)
            return
        }
        guard fd >= 0 else {
            startFallback(pid, reason: String(cString: strerror(-fd)))
            return
        }
        let poll = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
        guard uv_poll_init(server.loop, poll, fd) == 0 else {
            poll.deallocate()
            close(fd)
            startFallback(pid, reason: "uv_poll_init failed on a pidfd")
            return
        }
        uv_handle_set_data(UVHandle.handle(poll), UnsafeMutableRawPointer(bitPattern: Int(pid)))
        uv_poll_start(poll, Int32(UV_READABLE.rawValue), onPeerProcessExit)
        polls[pid] = (poll, fd)
    }

    /// Stops watching a process (its last lease ended).
    func unwatch(_ pid: Int32) {
        if let entry = polls.removeValue(forKey: pid) {
            uv_poll_stop(entry.poll)
            close(entry.fd)
            uv_close(UVHandle.handle(entry.poll), onProcessPollClosed)
        }
        fallbackPids.remove(pid)
    }

    /// A watched process exited.
    func exited(_ pid: Int32) {
        unwatch(pid)
        server.session.processExited(pid)
        server.requestCommit()
    }

    /// Pids that were dead before their watch began (handed over once).
    func takeExitedBeforeWatch() -> [Int32] {
        defer { exitedBeforeWatch.removeAll() }
        return exitedBeforeWatch
    }

    /// Starts checking a process every 100 ms; `reason` says why pidfd could not be used (nil:
    /// polling was asked for).
    private func startFallback(_ pid: Int32, reason: String?) {
        if fallbackTimer == nil {
            if let reason {
                server.logger.warning("pidfd is unavailable (\(reason)); checking holder processes every 100 ms instead")
            } else {
                server.logger.info("checking holder processes every 100 ms (--process-watch poll)")
            }
            let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
            uv_timer_init(server.loop, timer)
            uv_timer_start(timer, onProcessFallbackTick, 100, 100)
            fallbackTimer = timer
        }
        fallbackPids.insert(pid)
    }

    /// The fallback's tick: a process that no longer runs has exited.
    func pollFallback() {
        for pid in fallbackPids.sorted() where Self.isGone(pid) { exited(pid) }
    }

    /// Whether a process has exited: it no longer exists, or it is a zombie (dead, waiting for
    /// its parent to collect it: `kill(pid, 0)` still succeeds on one, so /proc says which).
    static func isGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return errno == ESRCH }
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return false }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
        let line = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        // "pid (comm) S ...": the state follows the last ')', as comm may hold one itself.
        guard let close = line.lastIndex(of: ")") else { return false }
        let state = line[line.index(after: close)...].drop { $0 == " " }.first
        return state == "Z" || state == "X"
    }

    /// Closes every watch (at stop).
    func stopAll() {
        for pid in Array(polls.keys) { unwatch(pid) }
        fallbackPids.removeAll()
        if let fallbackTimer { uv_close(UVHandle.handle(fallbackTimer), onHandleClosedFree) }
        fallbackTimer = nil
    }
}
