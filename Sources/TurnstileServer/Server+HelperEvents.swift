import TurnstileCore

// What the server's helpers (the pause directory, the process watch) report, handed to the
// broker here: the helpers only watch files and processes; the server alone calls the broker.

extension Server {
    /// Makes the broker's paused set match the pause directory (at start, after a reload,
    /// when the directory changes and on the once-a-second backstop rescan). An unreadable
    /// directory changes nothing: a flag is never lifted because it could not be seen.
    func syncPauseFlags() {
        guard let flags = pauseFlags.flags() else {
            logger.warning("cannot read the pause directory; keeping the pauses in force",
                           metadata: ["dir": "\(pauseFlags.path)"])
            return
        }
        broker.syncPaused(flags, now: now)
        processEffects()
    }
}

extension Server {
    /// A process some lease is bound to exited (its pidfd fired, or the fallback poll saw it gone).
    func holderProcessExited(_ pid: Int32) {
        logger.debug("holder process exited", metadata: ["pid": "\(pid)"])
        broker.processExited(pid, now: now)
        processEffects()
        requestCommit()
    }

    /// A draining lease's process group is gone: its slot is free.
    func processGroupGone(_ pgid: Int32) {
        broker.processGroupEnded(pgid, now: now)
        processEffects()
        requestCommit()
    }
}
