#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import Logging
import TurnstileConfigFile
import TurnstileCore
import TurnstileProtocol

/// The daemon: a libuv loop around the broker. It turns bytes into broker calls and the
/// broker's answers and effects into bytes, files and process watches, and nothing more.
///
/// Everything runs on the loop's one thread. The loop's `data` points at this object
/// (unretained: `run()` keeps it alive for the loop's whole life).
public final class Server {
    var settings: ServerSettings
    let logger: Logger
    let loop: UnsafeMutablePointer<uv_loop_t>
    var broker: Broker
    /// Set in `init` once the socket checks passed (they come first: Server+Listening).
    var store: StateStore!
    var listener: UnsafeMutablePointer<uv_pipe_t>?
    var lockFileDescriptor: Int32 = -1
    let deadlineTimer: UnsafeMutablePointer<uv_timer_t>
    let flushCheck: UnsafeMutablePointer<uv_check_t>
    /// Active while something happened outside the loop's poll (a timer, an idle turn) that
    /// must be committed: it keeps the poll from sleeping, so the commit follows at once.
    let commitSoon: UnsafeMutablePointer<uv_idle_t>
    /// The deadline timer fired: serve deadlines at the commit, after this turn's input.
    var deadlineDue = false
    /// When deadlines were last served: every lease still here was alive then, and a heartbeat
    /// read before the next serving counts for it (Server+Commit).
    var deadlinesServedAt = Instant(milliseconds: 0)
    /// Runs while some connection has lines left over from its turn (Server+InputTurns).
    let backlogTurns: UnsafeMutablePointer<uv_idle_t>
    /// Connections with lines left over, in the order they get their next turn.
    var backlogged: [Connection] = []
    /// Connections not read until their unsent answers drain, with when they last progressed
    /// and how many bytes they held then.
    var blocked: [ClientID: BlockedConnection] = [:]
    var stallTimer: UnsafeMutablePointer<uv_timer_t>?
    var signalHandles: [UnsafeMutablePointer<uv_signal_t>] = []
    var connections: [ClientID: Connection] = [:]
    var nextClientSerial: UInt64 = 1
    var flushQueue: [Connection] = []
    var watchers: [ClientID: Connection] = [:]
    /// Connections whose peer half-closed while requests were pending.
    var halfClosed: [ClientID: Connection] = [:]
    var halfClosedTimer: UnsafeMutablePointer<uv_timer_t>?
    /// Every 10 s while someone waits with `notify`: `queued` again where reason or place changed.
    var waitProgressTimer: UnsafeMutablePointer<uv_timer_t>?
    /// Closed connections draining their peer's last input, with their deadlines.
    var lingering: [ClientID: (connection: Connection, deadline: Instant)] = [:]
    var lingerTimer: UnsafeMutablePointer<uv_timer_t>?
    var processes: ProcessWatch!
    /// Draining leases' process groups, stopped and watched until gone.
    var groups: ProcessGroups!
    var pauseFlags: PauseDirectory!
    /// The members of the line being handled, reused from line to line.
    var memberScratch: [JSONMember] = []
    /// The shared read buffer: every read is consumed before the next one starts.
    let readBuffer: UnsafeMutableRawBufferPointer
    var armedDeadline: Instant?
    /// The broker's effects, drained into this reused array.
    var effectsBuffer: [Effect] = []
    /// This turn's grants until they are saved (Server+Storage).
    var uncommitted = UncommittedGrants()
    /// Runs while the state directory does not take writes, to try again.
    var storageRetryTimer: UnsafeMutablePointer<uv_timer_t>?
    /// Whether debug lines are logged (checked before building their metadata).
    let debugLogging: Bool
    var stopping = false
    /// Times the state directory stopped taking writes (the metric `storage_failures_total`).
    var storageFailures: UInt64 = 0
    /// The last `STATUS=` sent to systemd (Server+Systemd).
    var lastStatusLine = ""
    let startedAt: Instant

    /// Prepares the daemon: checks the socket path and takes its lock, takes the state
    /// directory's lock, restores saved state and resolves the pause flags, but opens no
    /// socket yet. Every check that can refuse the start comes before the state directory is
    /// read or written, so a daemon that refuses to start never touches another's state.
    /// - Throws: a description of what stops the daemon from starting.
    public init(settings: ServerSettings, logger: Logger) throws {
        turnstile_ignore_sigpipe()
        // Past a file size limit (`ulimit -f`) a write must fail with EFBIG, which the state
        // store handles, instead of killing the daemon.
        signal(SIGXFSZ, SIG_IGN)
        _ = turnstile_unblock_stop_signals()
        Self.raiseDescriptorLimit()
        self.settings = settings
        self.logger = logger
        debugLogging = logger.logLevel <= .debug
        loop = .allocate(capacity: 1)
        try check(uv_loop_init(loop), "uv_loop_init")
        deadlineTimer = .allocate(capacity: 1)
        flushCheck = .allocate(capacity: 1)
        commitSoon = .allocate(capacity: 1)
        backlogTurns = .allocate(capacity: 1)
        readBuffer = .allocate(byteCount: 65_536, alignment: 16)
        startedAt = Instant(milliseconds: uv_now(loop))
        deadlinesServedAt = startedAt
        broker = Broker(config: settings.config, random: KernelRandom())
        broker.processGroupAlive = { ProcessGroups.isAlive($0) }
        try prepareListening()
        store = try StateStore(directory: settings.stateDirectory, socketPath: settings.socketPath, logger: logger)
        store.loopOfJournal = loop
        uv_loop_set_data(loop, Unmanaged.passUnretained(self).toOpaque())
        processes = ProcessWatch(server: self)
        groups = ProcessGroups(server: self)
        pauseFlags = try PauseDirectory(path: settings.pauseDirectory, server: self)
        try restoreState()
    }

    /// The loop and the handles allocated in `init` (the loop is closed when `run` returns).
    deinit {
        readBuffer.deallocate()
        backlogTurns.deallocate()
        flushCheck.deallocate()
        commitSoon.deallocate()
        deadlineTimer.deallocate()
        loop.deallocate()
    }

    /// Every connection and pidfd is a descriptor, and the usual soft limit (1024) is far below
    /// `max_connections`: raise it to the hard limit.
    private static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// The loop's time: libuv refreshes it as each iteration starts and again when its poll
    /// returns, so within one batch of callbacks it is current to the millisecond.
    var now: Instant { Instant(milliseconds: uv_now(loop)) }

    /// The wall clock.
    var wall: WallTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallTime(unixMilliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    /// Restores leases, fences, breaker counts, throttles and telemetry from the state
    /// directory, then saves a fresh snapshot.
    private func restoreState() throws {
        let saved = try store.load(telemetryTTLSeconds: settings.config.telemetry.subscriptionLimitTTLSeconds)
        let rejected = broker.restore(saved.snapshot, fenceFloor: saved.fenceFloor, now: now, wall: wall)
        for record in rejected {
            logger.warning("dropped a saved lease that could not be restored",
                           metadata: ["fence": "\(record.fence)",
                                      "why": "bad token, duplicate fence or token, workspace already locked, ttl out of range, or a pgid no peer may bind"])
        }
        if broker.leaseCount > 0 { logger.info("restored leases", metadata: ["count": "\(broker.leaseCount)"]) }
        syncPauseFlags()
        processEffects()
        try store.writeSnapshot(broker.snapshot(now: now, wall: wall), fenceHighWater: broker.fenceHighWater, now: now)
    }

    /// Opens the socket, starts the handles and runs the loop until a stop signal.
    public func run() throws {
        try listen()
        try check(uv_timer_init(loop, deadlineTimer), "uv_timer_init")
        try check(uv_check_init(loop, flushCheck), "uv_check_init")
        try check(uv_check_start(flushCheck, onLoopTurnEnd), "uv_check_start")
        try check(uv_idle_init(loop, commitSoon), "uv_idle_init")
        try check(uv_idle_init(loop, backlogTurns), "uv_idle_init")
        for signal in [SIGTERM, SIGINT, SIGHUP] {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            try check(uv_signal_init(loop, handle), "uv_signal_init")
            try check(uv_signal_start(handle, onSignal, signal), "uv_signal_start")
            signalHandles.append(handle)
        }
        try pauseFlags.start()
        // Leases that were draining when the daemon stopped: stop and watch their groups again.
        for pgid in broker.drainingGroups { groups.drain(pgid) }
        rearmDeadlineTimer()
        logger.info("turnstiled ready", metadata: [
            "socket": "\(settings.socketPath)", "state_dir": "\(settings.stateDirectory)", "config": "\(settings.loadedConfigDescription)",
            "pause_dir": "\(settings.pauseDirectory)", "pid": "\(getpid())",
            "global": "\(settings.config.limits.global)", "fairness": "\(settings.config.limits.fairness.rawValue)",
        ])
        notifyReady()
        uv_run(loop, UV_RUN_DEFAULT)
        uv_loop_close(loop)
        logger.info("turnstiled stopped")
    }

    /// Stops gracefully: no new connections, waiters answered `shutting_down`, answers
    /// flushed, state saved, socket removed, every handle closed so `uv_run` returns.
    func stop(reason: String) {
        guard !stopping else { return }
        stopping = true
        logger.info("stopping", metadata: ["reason": "\(reason)"])
        broker.shutDown()
        processEffects()
        commitStorage()
        flushAll()
        stopStorageRetries()
        do {
            try store.writeSnapshot(broker.snapshot(now: now, wall: wall), fenceHighWater: broker.fenceHighWater, now: now)
            try store.releaseFenceReservation(highWater: broker.fenceHighWater)
        } catch {
            logger.error("could not save state", metadata: ["error": "\(error)"])
        }
        if let listener { uv_close(UVHandle.handle(listener), onHandleClosedFree) }
        listener = nil
        if settings.systemd?.passedSocket == nil { unlink(settings.socketPath) }
        settings.systemd?.notify("STOPPING=1")
        if lockFileDescriptor >= 0 { close(lockFileDescriptor) }
        for connection in connections.values { closeNow(connection) }
        if let halfClosedTimer { uv_close(UVHandle.handle(halfClosedTimer), onHandleClosedFree) }
        if let waitProgressTimer { uv_close(UVHandle.handle(waitProgressTimer), onHandleClosedFree) }
        waitProgressTimer = nil
        halfClosedTimer = nil
        if let lingerTimer { uv_close(UVHandle.handle(lingerTimer), onHandleClosedFree) }
        lingerTimer = nil
        uv_close(UVHandle.handle(deadlineTimer), nil)
        uv_close(UVHandle.handle(flushCheck), nil)
        uv_close(UVHandle.handle(commitSoon), nil)
        uv_close(UVHandle.handle(backlogTurns), nil)
        backlogged = []
        if let stallTimer { uv_close(UVHandle.handle(stallTimer), onHandleClosedFree) }
        stallTimer = nil
        blocked = [:]
        for handle in signalHandles { uv_close(UVHandle.handle(handle), onHandleClosedFree) }
        signalHandles = []
        pauseFlags.stop()
        processes.stopAll()
        groups.stopAll()
        store.close()
    }

    /// SIGHUP and the `reload` op: re-read the config file; keep the running config if the
    /// new one is invalid. The default config file, when absent, means the embedded defaults.
    /// - Returns: nil on success, else the error to answer (`bad_config`).
    @discardableResult
    func reloadConfig() -> ConfigError? {
        let config: TurnstileConfig
        if let path = settings.configPath, !settings.configIsOptional || access(path, F_OK) == 0 {
            switch ConfigFile.load(path) {
            case .failure(let error):
                logger.error("reload refused; keeping the running config", metadata: ["error": "\(error)"])
                return error
            case .success(let loaded): config = loaded
            }
        } else {
            logger.info("reload: no config file; running on the embedded defaults",
                        metadata: ["file": "\(settings.configPath ?? "-")"])
            config = TurnstileConfig()
        }
        if config.socketPath != settings.config.socketPath || config.stateDirectory != settings.config.stateDirectory
            || config.pauseDirectory != settings.config.pauseDirectory {
            logger.warning("reload: socket, state_dir and pause_dir changes take effect at the next start")
        }
        settings.config = config
        broker.reload(config, now: now)
        reviewRights()
        syncPauseFlags()
        processEffects()
        logger.info("config reloaded", metadata: ["file": "\(settings.configPath ?? "-")", "global": "\(config.limits.global)"])
        return nil
    }

    /// Arms the one deadline timer at the broker's next deadline, if it moved.
    func rearmDeadlineTimer() {
        guard !stopping else { return }
        let next = broker.nextDeadline()
        guard next != armedDeadline else { return }
        armedDeadline = next
        guard let next else {
            uv_timer_stop(deadlineTimer)
            return
        }
        let delay = next.milliseconds(since: Instant(milliseconds: uv_now(loop)))
        uv_timer_start(deadlineTimer, onDeadline, delay, 0)
    }
}

extension Server {
    /// The server a libuv handle's loop belongs to.
    static func of(_ loop: UnsafeMutablePointer<uv_loop_t>?) -> Server {
        Unmanaged<Server>.fromOpaque(uv_loop_get_data(loop)!).takeUnretainedValue()
    }
}
