#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CLibUV
import TurnstileClient
import TurnstileProtocol

/// The life of `turnstile run`: wait for a permit, start COMMAND under it, keep the lease
/// alive (heartbeats, re-attaching after a daemon restart), forward signals, stop COMMAND if
/// the lease is lost, release at the end. One thread; one `poll` over the daemon's socket,
/// a signalfd and the child's pidfd.
struct Runner {
    let socketPath: String
    let command: [String]
    let acquire: AcquireParameters
    let graceMilliseconds: Int64
    let waitDescription: String?
    /// The exit code when no permit came within `--wait` (75, or `--conflict-exit-code`).
    let noPermitExitCode: Int32

    var client: TurnstileClient?
    var signals: Int32 = -1
    /// The grant COMMAND runs under.
    var grant: Grant?
    var token = ""
    /// The granted lease's ttl (the daemon's default when `--ttl` is not given).
    var ttlMilliseconds: Int64 = 30_000
    var child: ChildGroup?
    var lastConfirmed: Int64 = 0
    var heartbeatID: Int?
    var lost: String?
    /// The signal that ended COMMAND, if one did.
    var endedBySignal: Int32?
    var killAt: Int64?
    /// For a lease holding capacity shared across hosts under `on_loss = "revoke"`: until when
    /// (monotonic ms) the grant is surely valid, and when COMMAND is stopped unless a heartbeat
    /// answer moved it first (protocol/CLUSTER.md §5: even a frozen daemon cannot let COMMAND
    /// outlive its unit).
    var validity: (renewAt: Int64, stopAt: Int64, until: Int64)?
    var nextHeartbeat: Int64 = 0
    var heartbeatSentAt: Int64 = 0
    /// Whether a long wait is reported again when its reason or position changes (on a
    /// terminal, or with `--verbose`); otherwise once.
    let reportsProgress: Bool

    init(socketPath: String, command: [String], acquire: AcquireParameters, graceMilliseconds: Int64,
         waitDescription: String?, noPermitExitCode: Int32 = Exit.noPermit.rawValue, reportsProgress: Bool = false) {
        self.noPermitExitCode = noPermitExitCode
        self.reportsProgress = reportsProgress
        self.socketPath = socketPath
        self.command = command
        self.acquire = acquire
        self.graceMilliseconds = graceMilliseconds
        self.waitDescription = waitDescription
    }

    /// Runs everything. - Returns: the exit code.
    mutating func run() throws -> Int32 {
        signals = turnstile_signalfd_for_run()
        guard signals >= 0 else { fatalError("signalfd: \(String(cString: strerror(-signals)))") }
        do {
            client = try TurnstileClient(socketPath: socketPath)
        } catch {
            printError("turnstile: \(error)")
            if case .forbidden = error { return Exit.refused.rawValue }
            return Exit.unreachable.rawValue
        }
        if let code = try waitForPermit() { return code }
        var environment = DefaultPaths.processEnvironment()
        for key in ["TURNSTILE_LEASE", "TURNSTILE_FENCE", "TURNSTILE_MODEL", "TURNSTILE_PROVIDER", "TURNSTILE_ROUTE"] {
            environment[key] = nil
        }
        environment["TURNSTILE_LEASE"] = token
        environment["TURNSTILE_FENCE"] = grant.map { "\($0.fence)" }
        if let model = grant?.model {
            environment["TURNSTILE_MODEL"] = model
            environment["TURNSTILE_PROVIDER"] = String(model.split(separator: "/", maxSplits: 1).first ?? "")
            environment["TURNSTILE_ROUTE"] = grant?.route
        }
        // COMMAND's orphans become ours, so a lost lease can wait until the whole group is gone.
        _ = turnstile_become_subreaper()
        do {
            child = try ChildGroup(command, environment: environment.map { "\($0.key)=\($0.value)" })
            // Bound to COMMAND's process group (its pgid is its pid) before anything of COMMAND
            // runs: the slot then stays taken while any process of the group runs, whatever
            // becomes of this wrapper (README, "turnstile run"). Sent is enough: the daemon reads
            // the attach before it can see this connection close, so its answer is not awaited.
            _ = try? client?.send(.attach(lease: token, pgid: child!.pid))
            try child!.start()
        } catch {
            printError("turnstile: cannot run \(command[0]): \(error)")
            release()
            return error.code == ENOENT ? 127 : 126
        }
        lastConfirmed = SocketStream.monotonicMilliseconds()
        var code = supervise()
        child?.reclaimTerminal()
        if lost == nil && !release(exitCode: code) {
            // The lease ended before COMMAND did (revoked or expired: the daemon then stops the
            // group itself, and its signal can come before its event is read): read the event,
            // and wait for the group as for any lost lease.
            takeLeaseEvents()
            if lost == nil { leaseLost("ended before \(command[0]) did") }
            code = finished(code, signal: endedBySignal)
        }
        return lost == nil ? code : Exit.leaseLost.rawValue
    }

    /// Sends the acquire and waits for its answer, saying after a second what it waits on. A
    /// daemon that goes away meanwhile (restarted: it answers `shutting_down`, or it is simply
    /// gone) is waited for and asked again, for what is left of `--wait`.
    /// - Returns: an exit code if COMMAND must not start.
    private mutating func waitForPermit() throws -> Int32? {
        let started = SocketStream.monotonicMilliseconds()
        let waitMilliseconds = Int64(clamping: acquire.waitMilliseconds ?? 0)
        var parameters = acquire
        while true {
            switch askForPermit(parameters, startedAt: started) {
            case .decided(let code): return code
            case .daemonGone:
                let left = waitMilliseconds - (SocketStream.monotonicMilliseconds() - started)
                guard left > 0 else {
                    printError("turnstile: no permit\(waitDescription.map { " within \($0)" } ?? ""): the daemon went away")
                    return noPermitExitCode
                }
                printError("turnstile: the daemon went away while waiting for a permit; waiting for it to come back")
                if let code = waitForDaemon(until: SocketStream.monotonicMilliseconds() + left) { return code }
                parameters.waitMilliseconds = UInt64(max(0, waitMilliseconds - (SocketStream.monotonicMilliseconds() - started)))
            }
        }
    }

    /// How one acquire on one connection ended.
    private enum PermitOutcome {
        /// Granted (nil) or refused with this exit code.
        case decided(Int32?)
        /// The daemon closed the connection or is shutting down: ask again once it is back.
        case daemonGone
    }

    /// One acquire on the current connection.
    private mutating func askForPermit(_ parameters: AcquireParameters, startedAt started: Int64) -> PermitOutcome {
        let id: Int
        var parameters = parameters
        parameters.notify = true
        do {
            id = try client!.send(.acquire(parameters))
        } catch {
            return .daemonGone
        }
        var queued: WireEvent?
        var told: String?
        var toldAt: Int64 = 0
        while true {
            let now = SocketStream.monotonicMilliseconds()
            if let queued, now - started >= 1000 {
                // Said once after a second; again when it changes (the daemon says so at most every
                // 10 s), if progress is reported at all.
                let line = "\(queued.reason ?? "?") (position \(queued.position.map { "\($0)" } ?? "?"))"
                if told == nil || (reportsProgress && line != told && now - toldAt >= 10_000) {
                    printError("turnstile: waiting: \(line)")
                    told = line
                    toldAt = now
                }
            }
            let timeout: Int32 = told != nil || queued == nil ? 1000 : Int32(max(0, 1000 - (now - started)))
            switch waitForInput(timeout: timeout, watchChild: false) {
            case .signal(let number):
                if [SIGINT, SIGTERM, SIGHUP].contains(number) { return .decided(128 + number) }
            case .message(let message):
                if let event = WireEvent(message), event.name == "queued" {
                    queued = event
                    continue
                }
                // A refusal of the connection itself (forbidden, too_many) has no id.
                let refusesConnection = message["id"] == nil && message["ok"]?.boolValue == false
                guard refusesConnection || message["id"]?.numberValue?.int64 == Int64(id) else { continue }
                return decide(Answer(message))
            case .disconnected:
                return .daemonGone
            case .timeout, .childChanged: continue
            }
        }
    }

    /// What an acquire's answer means for COMMAND.
    private mutating func decide(_ answer: Answer) -> PermitOutcome {
        if let granted = answer.grant {
            grant = granted
            token = granted.lease
            ttlMilliseconds = Int64(clamping: granted.ttlMilliseconds)
            if let validFor = granted.validUntilMilliseconds { noteValidity(validFor, from: SocketStream.monotonicMilliseconds()) }
            return .decided(nil)
        }
        let failure = answer.failure
        switch failure?.errorCode {
        case .shuttingDown:
            return .daemonGone
        case .cancelled:
            printError("turnstile: no permit: the wait was cancelled (turnstile cancel)")
            return .decided(noPermitExitCode)
        case .timeout, .unavailable:
            let within = waitDescription.map { Durations.milliseconds($0) == 0 ? " now" : " within \($0)" } ?? ""
            printError("turnstile: no permit\(within): \(failure?.reason ?? "?") (\(failure?.message ?? ""))")
            return .decided(noPermitExitCode)
        case .badRequest:
            printError("turnstile: bad_request: \(failure?.message ?? "")")
            return .decided(Exit.usage.rawValue)
        default:
            printError("turnstile: \(failure?.code ?? "error"): \(failure?.message ?? "")")
            return .decided(Exit.refused.rawValue)
        }
    }

    /// Connects again, every 100 ms until `deadline`, staying interruptible.
    /// - Returns: an exit code if the wait must end (a stop signal, or the deadline passed).
    private mutating func waitForDaemon(until deadline: Int64) -> Int32? {
        client = nil
        while SocketStream.monotonicMilliseconds() < deadline {
            if let fresh = try? TurnstileClient(socketPath: socketPath) {
                client = fresh
                return nil
            }
            if case .signal(let number) = waitForInput(timeout: 100, watchChild: false), [SIGINT, SIGTERM, SIGHUP].contains(number) {
                return 128 + number
            }
        }
        printError("turnstile: no permit\(waitDescription.map { " within \($0)" } ?? ""): the daemon did not come back")
        return noPermitExitCode
    }
}
