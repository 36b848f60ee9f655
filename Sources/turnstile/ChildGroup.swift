#if canImport(Glibc)
import Glibc
#endif
import CLibUV

/// COMMAND as `turnstile run` starts it: in its own process group, in the terminal's
/// foreground when `turnstile` itself is, with default signal dispositions and an empty
/// signal mask (`turnstile` blocks the signals it reads through a signalfd), and SIGTERM as
/// its parent-death signal.
struct ChildGroup {
    let pid: pid_t
    /// A descriptor that becomes readable when the child exits.
    let pidfd: Int32
    /// The terminal handed to the child's group, if any.
    private let terminal: Int32?
    /// The gate the child waits at before exec, and the pipe its exec's outcome comes back on.
    private let gate: Int32, result: Int32

    /// Creates COMMAND's process group with a child that waits to exec until `start` (so the
    /// lease can be bound to the group before anything of COMMAND runs). If `turnstile` itself
    /// dies (killed, so unable to stop COMMAND itself), COMMAND gets SIGTERM: its lease went
    /// with `turnstile`'s connection, and it must not go on running without one.
    /// - Throws: the `errno` of a failed fork.
    init(_ command: [String], environment: [String]) throws(SpawnError) {
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE, SIGTTOU, SIGTTIN, SIGTSTP, SIGQUIT] {
            sigaddset(&defaults, signal)
        }
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var gate: Int32 = -1, result: Int32 = -1
        let pid = turnstile_spawn_group(argv, envp, &defaults, SIGTERM, &gate, &result)
        guard pid > 0 else { throw SpawnError(code: -pid) }
        self.pid = pid
        self.gate = gate
        self.result = result
        pidfd = turnstile_pidfd_open(pid)
        // Hand the terminal to the child's group, so an interactive agent can read it; a child
        // that touched the terminal before this is stopped by SIGTTIN/SIGTTOU, so continue it.
        if isatty(STDIN_FILENO) == 1 && tcgetpgrp(STDIN_FILENO) == getpgrp() {
            _ = Glibc.signal(SIGTTOU, SIG_IGN)
            tcsetpgrp(STDIN_FILENO, pid)
            kill(-pid, SIGCONT)
            terminal = STDIN_FILENO
        } else {
            terminal = nil
        }
    }

    /// Lets COMMAND exec.
    /// - Throws: the `errno` of a failed exec (ENOENT: no such command).
    func start() throws(SpawnError) {
        let outcome = turnstile_spawn_open_gate(pid, gate, result)
        if outcome != 0 { throw SpawnError(code: -outcome) }
    }

    /// Sends a signal to the whole group.
    func signal(_ number: Int32) { kill(-pid, number) }

    /// Whether any process of the group is still there (zombies count until reaped: see
    /// `reapOthers`).
    var groupIsAlive: Bool { kill(-pid, 0) == 0 }

    /// Reaps exited descendants other than COMMAND: `turnstile run` is their subreaper, so
    /// COMMAND's orphans become its children, and their zombies must not linger.
    func reapOthers() { turnstile_reap_others(pid) }

    /// Takes the terminal back (when the child stops or ends).
    func reclaimTerminal() {
        if let terminal { tcsetpgrp(terminal, getpgrp()) }
    }

    /// Gives the terminal to the child again (after `turnstile` is continued).
    func handTerminalBack() {
        if let terminal { tcsetpgrp(terminal, pid) }
    }

    /// Checks the child without blocking.
    /// - Returns: its exit code (128+N for signal N, and the signal) if it ended, `.stopped` if it stopped.
    func poll() -> ChildState {
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG | WUNTRACED)
        guard reaped == pid else { return .running }
        let low = status & 0x7F
        if low == 0 { return .exited(code: (status >> 8) & 0xFF, signal: nil) }
        if low == 0x7F { return .stopped }
        return .exited(code: 128 + low, signal: low)
    }

    /// What the child is doing.
    enum ChildState: Equatable {
        case running, stopped
        case exited(code: Int32, signal: Int32?)
    }
}

/// A failed spawn.
struct SpawnError: Error, CustomStringConvertible {
    let code: Int32
    var description: String { String(cString: strerror(code)) }
}
