import CLibUV
import Foundation

/// A process started for a test with `posix_spawn`: a clean signal mask and default
/// dispositions (Foundation's `Process` would pass on a blocked SIGTERM), its own process
/// group (killed whole at teardown), stdout and stderr into a pipe that a thread drains into
/// `output`, and an exit awaited through a pidfd.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let pidfd: Int32
    private let sink = OutputSink()
    private var exitStatus: Int32?

    /// Starts `arguments[0]` (looked up in PATH if it has no `/`).
    init(_ arguments: [String], environment: [String: String]? = nil, stdin: Int32? = nil) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(.EIO) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // Its own process group, so teardown can kill whatever it started too.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(fds[1])
        guard result == 0 else {
            close(fds[0])
            throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO)
        }
        self.pid = pid
        pidfd = turnstile_pidfd_open(pid)
        let reader = fds[0]
        let sink = self.sink
        // The thread holds only the sink, never the process object, so dropping the object
        // (which kills the child) does not wait for the pipe to end.
        Thread.detachNewThread { sink.drain(reader) }
    }

    deinit {
        kill(-pid, SIGKILL)
        if exitStatus == nil { _ = waitForExit(milliseconds: 5000) }
        if pidfd >= 0 { close(pidfd) }
    }

    /// Everything it wrote so far.
    var output: String { sink.text }

    /// Waits until its output contains `text`.
    /// - Returns: false if the deadline passed (or the output ended) first.
    @discardableResult
    func waitForOutput(_ text: String, milliseconds: Int = 10_000) -> Bool {
        sink.wait(for: text, milliseconds: milliseconds)
    }

    /// Sends a signal.
    func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the process to exit (the pidfd becomes readable), then reaps it.
    /// - Returns: the wait status, or nil if it is still running at the deadline.
    func waitForExit(milliseconds: Int32 = 10_000) -> Int32? {
        if let exitStatus { return exitStatus }
        if pidfd >= 0 {
            var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            while poll(&entry, 1, milliseconds) < 0 && errno == EINTR {}
        }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, pidfd >= 0 ? WNOHANG : 0)
        guard reaped == pid else { return nil }
        exitStatus = status
        // Everything it wrote is read once its pipe ends (bounded: a grandchild may hold it).
        sink.waitForEnd(milliseconds: 2000)
        return status
    }

    /// The exit code if it exited normally.
    var exitCode: Int32? {
        guard let status = exitStatus, status & 0x7F == 0 else { return nil }
        return (status >> 8) & 0xFF
    }

    /// The signal that ended it, if one did.
    var terminatingSignal: Int32? {
        guard let status = exitStatus, status & 0x7F != 0, status & 0x7F != 0x7F else { return nil }
        return status & 0x7F
    }
}

/// A child's output, filled by a reader thread and read by the test.
final class OutputSink: @unchecked Sendable {
    private let lock = NSCondition()
    private var captured = Data()
    private var ended = false

    /// Reads the pipe until it ends.
    func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            lock.lock()
            if count > 0 { captured.append(contentsOf: buffer[0..<count]) } else { ended = true }
            lock.broadcast()
            lock.unlock()
            if count <= 0 { break }
        }
        close(fd)
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: captured, as: UTF8.self)
    }

    func wait(for text: String, milliseconds: Int) -> Bool {
        let deadline = Date().addingTimeInterval(Double(milliseconds) / 1000)
        lock.lock()
        defer { lock.unlock() }
        while !String(decoding: captured, as: UTF8.self).contains(text) {
            if ended || !lock.wait(until: deadline) { return String(decoding: captured, as: UTF8.self).contains(text) }
        }
        return true
    }

    func waitForEnd(milliseconds: Int) {
        let deadline = Date().addingTimeInterval(Double(milliseconds) / 1000)
        lock.lock()
        defer { lock.unlock() }
        while !ended && lock.wait(until: deadline) {}
    }
}
