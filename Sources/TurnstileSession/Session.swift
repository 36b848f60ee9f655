import Logging
import TurnstileCore
import TurnstileProtocol

/// The daemon without its sockets: bytes in, the broker's decisions out as bytes, journal
/// records, process watches and closes (README, "Architecture").
///
/// A transport (the libuv server, or a test's in-memory one) opens connections, hands over
/// the bytes it read and the events it saw (a process exited, a deadline is due, the pause
/// directory changed), and at the end of each loop turn takes the `outbox`: it makes the
/// journal batch durable first, then writes each connection's `output`, then performs the
/// closes. Nothing here does I/O or reads a clock; what it must ask the machine (is this
/// process alive? create this pause flag) it asks its `host`, which tests fake.
///
/// Single-threaded: the transport's loop owns it.
public final class Session {
    /// The config in force (replaced by `reload`).
    public internal(set) var config: TurnstileConfig
    /// The broker: every limit, the queue and the leases.
    public internal(set) var broker: Broker
    /// The daemon's version, for `hello`, `status` and `metrics`.
    let version: String
    let logger: Logger
    /// Whether debug lines are logged (checked before their metadata is built).
    let debugLogging: Bool
    /// Unowned and unchecked: the host owns the session and outlives it, and a checked
    /// reference would cost two atomic operations on every clock reading.
    unowned(unsafe) let host: any SessionHost
    /// When the session started, for the uptime.
    let startedAt: Instant
    /// When deadlines were last served: every lease still here was alive then, and a
    /// heartbeat read before the next serving counts for it.
    public internal(set) var deadlinesServedAt: Instant
    /// Open connections, and closing ones until the transport says they are gone.
    public internal(set) var connections: [ClientID: SessionConnection] = [:]
    /// Connections that asked for `watch` events.
    var watchers: [ClientID: SessionConnection] = [:]
    /// Set by `shutDown`: no more requests are acted on, holdings are kept for the restart.
    public internal(set) var stopping = false
    /// What this turn decided, for the transport's commit.
    public var outbox = SessionOutbox()
    /// This turn's grants until they are saved (Session+Grants).
    var uncommitted = UncommittedGrants()
    /// Times the state directory stopped taking writes (the metric `storage_failures_total`).
    public internal(set) var storageFailures: UInt64 = 0
    /// Whether the state directory fails to take writes now.
    public internal(set) var storageFailing = false
    /// Effects taken from the broker's transitions and not yet carried out.
    var queuedEffects: [Effect] = []
    /// The effects being carried out (two arrays swapped, none allocated per batch).
    var effectsBuffer: [Effect] = []
    /// The acquire or unpark being handled, whose grant, if it gets one at once, its `granted`
    /// effect answers with this `id`.
    var requestInFlight: (ticket: Ticket, id: ArraySlice<UInt8>?, connection: SessionConnection)?
    /// Whether `processEffects` is running (it is not re-entered).
    var processingEffects = false
    /// Whether the effects being processed come from a control the cluster shared: they are
    /// applied here, not published back.
    var applyingSharedControl = false
    /// The members of the line being handled, reused from line to line.
    var memberScratch: [JSONMember] = []

    /// Creates a session around a broker (restored or new).
    /// - Parameters:
    ///   - broker: the broker, with its state restored.
    ///   - config: the config the broker runs.
    ///   - version: the daemon's version.
    ///   - host: the machine's answers (processes, pause flags, config file, clocks).
    ///   - logger: where decisions are logged.
    public init(broker: Broker, config: TurnstileConfig, version: String, host: any SessionHost, logger: Logger) {
        self.broker = broker
        self.config = config
        self.version = version
        self.host = host
        self.logger = logger
        debugLogging = logger.logLevel <= .debug
        startedAt = host.now
        deadlinesServedAt = startedAt
    }

    /// The loop's time.
    public var now: Instant { host.now }

    /// The wall clock.
    public var wall: WallTime { host.wall }

    /// The connection with this id, if it is still known.
    public func connection(_ id: ClientID) -> SessionConnection? { connections[id] }

    /// The earliest instant the broker has something to do by itself.
    public var nextDeadline: Instant? { broker.nextDeadline() }

    /// Whether some waiter asked for `queued` progress (the transport runs the 10 s round).
    public var hasWaiters: Bool { broker.waiterCount > 0 }

    /// The daemon's own figures for `status` and `metrics`.
    func serverInfo(_ at: Instant) -> ServerInfo {
        ServerInfo(version: version, pid: host.daemonPID, uptimeMilliseconds: at.milliseconds(since: startedAt),
                   connections: connections.count, watchers: watchers.count)
    }

    /// "3/8 permits in use, 2 waiting, 14 connections" (systemd's status line).
    public var statusLine: String {
        "\(broker.permitsInUse)/\(config.limits.global) permits in use, \(broker.waiterCount) waiting, "
            + "\(connections.count) connections"
    }
}
