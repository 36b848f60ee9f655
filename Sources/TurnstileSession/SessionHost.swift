import TurnstileCore

/// What a session asks the machine it runs on, and gets an answer to at once: the clocks,
/// whether a process or group is alive and whose it is, the pause flag files (a `pause` is
/// answered only once its flag exists), and the config file for `reload`. The daemon answers
/// from the kernel and the file system; tests answer from tables.
public protocol SessionHost: AnyObject {
    /// The loop's monotonic time.
    var now: Instant { get }
    /// The wall clock.
    var wall: WallTime { get }
    /// The daemon's pid (`hello`, `status`).
    var daemonPID: Int32 { get }
    /// The daemon's uid: it may always connect, as an admin.
    var daemonUID: UInt32 { get }
    /// The daemon's own process group, which no lease may be bound to.
    var daemonProcessGroup: Int32 { get }
    /// Whether a process has exited (or never was).
    func isProcessGone(_ pid: Int32) -> Bool
    /// Whether any process of a group still runs (not a zombie).
    func isProcessGroupAlive(_ pgid: Int32) -> Bool
    /// The uid owning a group's leader, if it can be read.
    func processGroupOwner(_ pgid: Int32) -> UInt32?
    /// Creates a project's pause flag file; nil on success, else why not.
    func createPauseFlag(_ project: String) -> String?
    /// Removes a project's pause flag file (absent is fine); nil on success, else why not.
    func removePauseFlag(_ project: String) -> String?
    /// The projects flagged in the pause directory; nil when it cannot be read.
    func pauseFlags() -> [String]?
    /// The pause directory's path, for log lines.
    var pauseDirectory: String { get }
    /// Reads the config file again for `reload` and SIGHUP.
    func loadConfig() -> Result<TurnstileConfig, ConfigLoadFailure>
    /// What the transport counted of its work with the cluster; nil without one.
    var clusterTransport: ClusterTransportReport? { get }
}

extension SessionHost {
    /// A host that shares nothing across hosts has no cluster transport.
    public var clusterTransport: ClusterTransportReport? { nil }
}

/// Why `reload` kept the running config: the message names the file, line and key.
public struct ConfigLoadFailure: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// What a loop turn decided besides bytes for connections, in the order it was decided; the
/// transport's commit performs it (Session, "commit").
public struct SessionOutbox {
    /// Journal records, written before any answer of the turn leaves.
    public var journal = JournalBatch()
    /// Process watches and hooks to start or stop.
    public var commands: [HostCommand] = []
    /// Connections with output to write, each once.
    public var flushes: [SessionConnection] = []
    /// Connections to close, and how.
    public var closes: [(ClientID, CloseKind)] = []
    /// A waiter asked for `queued` progress: the transport keeps its 10 s round going.
    public var wantsWaitProgress = false
    /// Shared units to claim from the cluster, in the order decided (protocol/CLUSTER.md §3.2).
    /// The transport sends a turn's claims together, in one etcd transaction, once the turn's
    /// journal and fence reservation are durable (a claim's fence must never be issued twice);
    /// after a failed commit it keeps them for the next one. It reports each outcome with
    /// `Session.claimSucceeded`, `claimFailed` or `claimOutcomeUnknown`.
    public var claims: [ClaimRequest] = []
    /// Shared units to give back: the transport deletes their slots, batched per turn as
    /// claims are (protocol/CLUSTER.md §3.5).
    public var unclaims: [Unclaim] = []
    /// Throttles and subscription-limit flags decided here, for the transport to publish to the
    /// cluster when `[cluster]` shares them (protocol/CLUSTER.md §2); never those it applied
    /// from the cluster.
    public var sharedControls: [SharedControl] = []

    public init() {}
}

/// Something only the machine can do for the session, done at the turn's commit.
public enum HostCommand: Equatable, Sendable {
    /// Watch a process: its exit is reported with `Session.processExited`.
    case watchProcess(Int32)
    /// Stop watching a process.
    case unwatchProcess(Int32)
    /// Stop a draining lease's process group (TERM, then KILL after `kill_grace_ms`, or at
    /// `killBy` if that comes first) and report with `Session.processGroupGone` when it is gone.
    /// `killBy` is the safe deadline of a lease that held a unit shared across hosts: past it
    /// another host may be given the unit (protocol/CLUSTER.md §5).
    case drainGroup(Int32, killBy: Instant?)
    /// Run the `on_trip` command for a project whose breaker tripped.
    case runTripHook(project: String, failures: Int)
}

/// How a connection is closed.
public enum CloseKind: Equatable, Sendable {
    /// At once; unsent output is dropped.
    case now
    /// Once its output is written (then its peer's last input is drained, as HTTP servers do).
    case afterFlush
}
