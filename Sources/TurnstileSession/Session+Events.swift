import TurnstileCore
import TurnstileProtocol

/// What the transport and the machine report besides requests: deadlines due, processes and
/// groups gone, the pause directory changed, a reload, the stop. Each is handed to the broker
/// here and its effects turned into output, as for a request.
extension Session {
    /// How often a waiter that asked for `notify` hears again where it stands.
    public static let waitProgressMilliseconds: UInt64 = 10_000

    /// Deadlines are due: expired leases end, waiters time out, blocks lift.
    public func serveDeadlines() {
        guard !stopping else { return }
        take(broker.tick(now: now))
        deadlinesServedAt = now
        processEffects()
    }

    /// A process some lease is bound to exited (its pidfd fired, the fallback poll saw it
    /// gone, or it was gone before its watch began).
    public func processExited(_ pid: Int32) {
        if debugLogging { logger.debug("holder process exited", metadata: ["pid": "\(pid)"]) }
        take(broker.processExited(pid, now: now))
        processEffects()
    }

    /// A draining lease's process group is gone: its slot is free.
    public func processGroupGone(_ pgid: Int32) {
        take(broker.processGroupEnded(pgid, now: now))
        processEffects()
    }

    /// Makes the broker's paused set match the pause directory (at start, after a reload,
    /// when the directory changes and on the once-a-second backstop rescan). An unreadable
    /// directory changes nothing: a flag is never lifted because it could not be seen.
    public func syncPauseFlags() {
        guard let flags = host.pauseFlags() else {
            logger.warning("cannot read the pause directory; keeping the pauses in force",
                           metadata: ["dir": "\(host.pauseDirectory)"])
            return
        }
        take(broker.syncPaused(flags, now: now))
        processEffects()
    }

    /// Sends `queued` again to each notify waiter whose reason or position changed since it was
    /// last told (protocol/PROTOCOL.md §9.1), at most once per round.
    /// - Returns: whether anyone still waits (the round goes on).
    public func reportWaitProgress() -> Bool {
        guard broker.waiterCount > 0 else { return false }
        for entry in broker.waiterProgress(now: now) {
            guard let connection = connections[entry.ticket.client],
                  var pending = connection.pending[entry.ticket.request], pending.notify,
                  pending.toldReason != entry.refusal.reason || pending.toldPosition != entry.position else { continue }
            pending.toldReason = entry.refusal.reason
            pending.toldPosition = entry.position
            connection.pending[entry.ticket.request] = pending
            let id = pending.id.map { ArraySlice($0) }
            send(to: connection) { Answers.queued(&$0, id: id, position: entry.position, entry.refusal) }
        }
        return true
    }

    /// SIGHUP and the `reload` op: read the config file again; keep the running config if the
    /// new one is invalid. Rights of open connections are decided again.
    /// - Returns: nil on success, else the error to answer (`bad_config`).
    @discardableResult
    public func reload() -> ConfigLoadFailure? {
        let loaded: TurnstileConfig
        switch host.loadConfig() {
        case .failure(let error):
            logger.error("reload refused; keeping the running config", metadata: ["error": "\(error)"])
            return error
        case .success(let config): loaded = config
        }
        if loaded.socketPath != config.socketPath || loaded.stateDirectory != config.stateDirectory
            || loaded.pauseDirectory != config.pauseDirectory {
            logger.warning("reload: socket, state_dir and pause_dir changes take effect at the next start")
        }
        if loaded.cluster != broker.config.cluster {
            logger.warning("reload: [cluster] changes take effect at the next start")
        }
        config = loaded
        take(broker.reload(loaded, now: now))
        reviewRights()
        syncPauseFlags()
        processEffects()
        logger.info("config reloaded", metadata: ["global": "\(loaded.limits.global)"])
        return nil
    }

    /// The daemon stops: waiters are answered `shutting_down`; leases are kept, to be saved
    /// and restored, and requests still arriving are answered `shutting_down`.
    public func shutDown() {
        guard !stopping else { return }
        stopping = true
        take(broker.shutDown())
        processEffects()
    }
}
