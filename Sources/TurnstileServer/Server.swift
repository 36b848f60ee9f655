#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import Logging
import TurnstileConfigFile
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// The daemon: a libuv loop around the session. It hands the session the bytes it reads and
/// what it sees happen (timers, signals, processes, the pause directory), and at the end of
/// each loop turn carries out what the session decided: journal, writes, closes (Server+Commit).
///
/// Everything runs on the loop's one thread. The loop's `data` points at this object
/// (unretained: `run()` keeps it alive for the loop's whole life).
public final class Server {
    var settings: ServerSettings
    let logger: Logger
    let loop: UnsafeMutablePointer<uv_loop_t>
    /// The protocol and the broker; set in `init` once the state is restored.
    var session: Session!
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
    /// Runs while some connection has lines left over from its turn (Server+InputFlow).
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
    /// Connections whose write finished, with output left for the commit.
    var flushSoon: [Connection] = []
    /// The session's flushes, swapped into this reused array at each commit.
    var flushBuffer: [SessionConnection] = []
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
    /// The session's view of the machine.
    private(set) var host: DaemonHost!
    /// The shared read buffer: every read is consumed before the next one starts.
    let readBuffer: UnsafeMutableRawBufferPointer
    var armedDeadline: Instant?
    /// Runs while the state directory does not take writes, to try again.
    var storageRetryTimer: UnsafeMutablePointer<uv_timer_t>?
    var stopping = false
    /// The link to the cluster model capacity is shared with (`[cluster]`); nil without one.
    var cluster: ClusterLink?
    /// What the cluster link counted, for `status` and `metrics`.
    var clusterMetrics = ClusterTransportReport()
    /// The last `STATUS=` sent to systemd (Server+Systemd).
    var lastStatusLine = ""

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
        loop = .allocate(capacity: 1)
        try check(uv_loop_init(loop), "uv_loop_init")
        deadlineTimer = .allocate(capacity: 1)
        flushCheck = .allocate(capacity: 1)
        commitSoon = .allocate(capacity: 1)
        backlogTurns = .allocate(capacity: 1)
        readBuffer = .allocate(byteCount: 65_536, alignment: 16)
        try prepareListening()
        store = try StateStore(directory: settings.stateDirectory, socketPath: settings.socketPath, logger: logger)
        store.loopOfJournal = loop
        uv_loop_set_data(loop, Unmanaged.passUnretained(self).toOpaque())
        processes = ProcessWatch(server: self)
        groups = ProcessGroups(server: self)
        pauseFlags = try PauseDirectory(path: settings.pauseDirectory, server: self)
        try restoreState()
        if let config = settings.config.cluster {
            cluster = try ClusterLink(server: self, config: config, logger: logger)
            try cluster!.checkAgreementAtStart()
        }
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
    /// directory into a new broker and the session around it, then saves a fresh snapshot.
    private func restoreState() throws {
        let saved = try store.load(telemetryTTLSeconds: settings.config.telemetry.subscriptionLimitTTLSeconds)
        var broker = Broker(config: settings.config, random: KernelRandom())
        broker.processGroupAlive = { ProcessGroups.isAlive($0) }
        let restored = broker.restore(saved.snapshot, fenceFloor: saved.fenceFloor, now: now, wall: wall)
        let rejected = restored.reply
        for record in rejected {
            logger.warning("dropped a saved lease that could not be restored",
                           metadata: ["fence": "\(record.fence)",
                                      "why": "bad token, duplicate fence or token, workspace already locked, ttl out of range, or a pgid no peer may bind"])
        }
        if broker.leaseCount > 0 { logger.info("restored leases", metadata: ["count": "\(broker.leaseCount)"]) }
        host = DaemonHost(server: self)
        session = Session(broker: broker, config: settings.config, version: settings.version, host: host, logger: logger)
        session.carryOut(restored)
        session.syncPauseFlags()
        performCommands()
        // The snapshot holds everything the restore changed.
        session.outbox.journal.removeAll()
        try store.writeSnapshot(session.broker.snapshot(now: now, wall: wall), fenceHighWater: session.broker.fenceHighWater,
                                now: now)
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
        try cluster?.start()
        // Leases that were draining when the daemon stopped: stop and watch their groups again.
        let sharedDrains = Set(session.broker.drainingGroupsOfSharedUnits)
        for pgid in session.broker.drainingGroups { groups.drain(pgid, killBy: sharedDrains.contains(pgid) ? now : nil) }
        rearmDeadlineTimer()
        logger.info("turnstiled ready", metadata: [
            "socket": "\(settings.socketPath)", "state_dir": "\(settings.stateDirectory)", "config": "\(settings.loadedConfigDescription)",
            "pause_dir": "\(settings.pauseDirectory)", "pid": "\(getpid())",
            "global": "\(session.config.limits.global)", "fairness": "\(session.config.limits.fairness.rawValue)",
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
        session.shutDown()
        performCommands()
        commitStorage()
        flushAll()
        stopStorageRetries()
        do {
            try store.writeSnapshot(session.broker.snapshot(now: now, wall: wall), fenceHighWater: session.broker.fenceHighWater,
                                    now: now)
            try store.releaseFenceReservation(highWater: session.broker.fenceHighWater)
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
        cluster?.stop()
        processes.stopAll()
        groups.stopAll()
        store.close()
    }

    /// Arms the one deadline timer at the broker's next deadline, if it moved.
    func rearmDeadlineTimer() {
        guard !stopping else { return }
        let next = session.nextDeadline
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
