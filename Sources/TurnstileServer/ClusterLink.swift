#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import Logging
import Synchronization
import TurnstileCluster
import TurnstileCore
import TurnstileSession

/// The daemon's side of the cluster it shares model capacity with (protocol/CLUSTER.md §8): it
/// holds the etcd client, keeps the host lease alive, sends each turn's claims and unclaims,
/// polls the slots, and reports every outcome to the session, which decides what it means.
///
/// The etcd client runs on a thread of its own; its results come back through `ClusterInbox`
/// and run here, on the loop thread, like any other input. The host lease:
/// * registered at start (and after it expired): `clusterRestored(safeDeadline:)`;
/// * renewed every third of `lease_ttl_ms`, each acknowledgement moving the safe deadline
///   (`clusterRenewed`): the renewal's send time + the ttl etcd granted − a margin;
/// * when no renewal was acknowledged by a third of the ttl before the safe deadline, the
///   cluster counts as lost (`clusterLost`), so holders revoked under `on_loss = "revoke"` have
///   that third to stop before another host may be given their units;
/// * a renewal acknowledged after a loss restores the cluster on the same lease (its slots were
///   never lost); a renewal that finds the lease gone registers a new one.
final class ClusterLink {
    unowned let server: Server
    let config: ClusterConfig
    let layout: SlotLayout
    let client: EtcdClient
    let logger: Logger
    let inbox: ClusterInbox
    /// Wakes the loop when the inbox has work (owned; freed when closed).
    let wakeup: UnsafeMutablePointer<uv_async_t>
    /// Runs every `tickMilliseconds`: registration and renewals due, the slots poll, retries.
    let tick: UnsafeMutablePointer<uv_timer_t>
    /// Fires when the cluster must count as lost unless a renewal comes first.
    let lossTimer: UnsafeMutablePointer<uv_timer_t>

    /// The host lease, once granted; nil while registering.
    var lease: EtcdLeaseID?
    var registering = false
    var renewing = false
    /// When the next registration try or renewal is due.
    var nextLeaseCallAt = Instant(milliseconds: 0)
    /// Until when this host's units are surely its own; nil before the first registration.
    var safeDeadline: Instant?
    /// Whether the session was last told the cluster is available.
    var available = false
    /// Whether this host's shared limits were found to agree with the fleet's (once is enough:
    /// a reload cannot change them).
    var agreed = false
    /// The slots this host knows of: its own, those in flight, the others' as last polled.
    var slots: SlotBook
    /// The waiting hosts' order, per shared limit (ClusterLink+Tickets).
    var tickets = TicketBook()
    var polling = false
    var nextPollAt = Instant(milliseconds: 0)
    /// Counts polls sent, so a poll older than a change this host made is not taken for news.
    var pollSerial = 0
    /// Shared throttles and flags as last polled, by key: their end, Unix ms.
    var controlsSeen: [String: Int64] = [:]
    /// The throttle and flag keys this host is changing or just changed.
    var controlWrites = RecentWrites()
    /// Shared pauses (ClusterLink+Pauses): the projects this host's flags and etcd last agreed
    /// on, and the projects whose keys this host is changing or just changed.
    var pausesAgreed: Set<String> = []
    var pauseWrites = RecentWrites()
    /// Claims whose transaction's outcome is unknown, to read back.
    var readBacks: [PlacedClaim] = []
    var readingBack = false
    /// Leases kept through a loss whose unit could not be claimed again: they run in excess
    /// of the fleet's limit until they end.
    var excess: Set<UInt64> = []
    /// The host lease expired: leases kept through the loss claim their units again on the next.
    var reclaimDue = false
    /// Claims waiting for this host's deletion of a unit of a limit of theirs to be acknowledged.
    var behindDeletions: [ClaimRequest] = []
    /// Claims placed in a slot, waiting for a transaction (`flushClaims`).
    var claimQueue: [PlacedClaim] = []
    /// Claim transactions under way.
    var claimTransactions = 0
    /// Slots to delete, kept until a delete is acknowledged.
    var deletions: [PlacedSlot] = []
    var deleting = false
    var stopped = false

    /// How often the tick runs: the slots poll's period, and how soon a failed call is retried.
    static let tickMilliseconds: UInt64 = 100
    /// At most this many one-slot claims (or deletions) per transaction: etcd's default limit
    /// of operations per branch (`--max-txn-ops`, 128) counts a nested transaction's own branch
    /// against what is left of the outer one (etcd 3.4's `checkTxnRequest`), so 127 one-operation
    /// nested transactions fit, and 128 are refused (wider claims: `takeClaimBatch`).
    static let operationsPerTransaction = 127
    /// At most this many claim transactions under way at once (`flushClaims`). Measured with
    /// 64 clients on each of three daemons: 1 left etcd idle between transactions, no bound
    /// made more and emptier ones and doubled the p99; 2 did best on both.
    static let claimTransactionsAtOnce = 2

    init(server: Server, config: ClusterConfig, logger: Logger) throws {
        self.server = server
        self.config = config
        self.logger = logger
        layout = SlotLayout(prefix: config.prefix, host: config.host ?? Self.machineName())
        slots = SlotBook(host: layout.host)
        var settings = EtcdClient.Configuration()
        // A renewal must fail (and be retried) well before the loss point; claims too.
        settings.timeout = .milliseconds(Int64(max(config.leaseTTLMilliseconds / 3, 200)))
        settings.tls = EtcdClient.TLS(caFile: config.caFile, certFile: config.certFile, keyFile: config.keyFile)
        do {
            client = try EtcdClient(endpoints: config.endpoints, configuration: settings)
        } catch {
            throw StartupError(description: "cluster: \(error)")
        }
        wakeup = .allocate(capacity: 1)
        tick = .allocate(capacity: 1)
        lossTimer = .allocate(capacity: 1)
        inbox = ClusterInbox(wakeup: wakeup)
    }

    /// The machine's hostname, the default `host`.
    static func machineName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    var now: Instant { server.now }
    var session: Session { server.session }
    var ttl: UInt64 { config.leaseTTLMilliseconds }

    /// Starts the handles and the first registration.
    func start() throws {
        try check(uv_async_init(server.loop, wakeup, onClusterInbox), "uv_async_init")
        try check(uv_timer_init(server.loop, tick), "uv_timer_init")
        try check(uv_timer_init(server.loop, lossTimer), "uv_timer_init")
        uv_timer_start(tick, onClusterTick, Self.tickMilliseconds, Self.tickMilliseconds)
        logger.info("joining the cluster", metadata: [
            "endpoints": "\(config.endpoints.joined(separator: ","))", "prefix": "\(config.prefix)", "host": "\(layout.host)",
            "lease_ttl_ms": "\(ttl)", "on_loss": "\(config.onLoss.rawValue)",
        ])
        tickFired()
    }

    /// Stops for good: no more calls; the host lease is left to expire (holders of its units
    /// stop at their `valid_until_ms`, which it outlives), the client closed in the background.
    func stop() {
        guard !stopped else { return }
        stopped = true
        inbox.close()
        uv_close(UVHandle.handle(wakeup), onHandleClosedFree)
        uv_close(UVHandle.handle(tick), onHandleClosedFree)
        uv_close(UVHandle.handle(lossTimer), onHandleClosedFree)
        client.close {}
    }

    /// Runs the work the etcd client's thread queued, then commits what it decided.
    func drainInbox() {
        for work in inbox.take() where !stopped { work(self) }
        server.requestCommit()
    }

    /// The periodic tick: what is due of registration, renewal, poll and retries.
    func tickFired() {
        guard !stopped else { return }
        let now = self.now
        if now >= nextLeaseCallAt {
            if lease == nil { register() } else { renew() }
        }
        if lease != nil {
            if now >= nextPollAt { poll() }
            retryReadBacks()
            sendDeletions()
        }
    }

    // MARK: The host lease

    /// The safe deadline of a renewal or grant sent at `sentAt` (EtcdClock nanoseconds) for
    /// `ttlSeconds`: its send time + the ttl − a margin (a tenth of it, at least 100 ms).
    func safeDeadline(sentAt: UInt64, ttlSeconds: Int64) -> Instant {
        let ttlMilliseconds = UInt64(clamping: ttlSeconds) &* 1000
        let margin = max(ttlMilliseconds / 10, 100)
        return Instant(milliseconds: sentAt / 1_000_000).adding(milliseconds: ttlMilliseconds > margin ? ttlMilliseconds - margin : 0)
    }

    private func register() {
        guard !registering else { return }
        registering = true
        let seconds = Int64(max(ttl / 1000, 2))
        client.grantLease(ttlSeconds: seconds) { [inbox] result in
            inbox.post { $0.registered(result) }
        }
    }

    private func registered(_ result: Result<EtcdLeaseGrant, EtcdError>) {
        registering = false
        switch result {
        case .failure(let error):
            logger.warning("cluster: could not register the host lease", metadata: ["error": "\(error)"])
            nextLeaseCallAt = now.adding(milliseconds: Self.tickMilliseconds * 5)
        case .success(let grant):
            lease = grant.id
            let deadline = safeDeadline(sentAt: grant.sentAt, ttlSeconds: grant.ttlSeconds)
            nextLeaseCallAt = now.adding(milliseconds: ttl / 3)
            let value = "{\"pid\":\(getpid()),\"started\":\(server.wall.unixMilliseconds)}"
            client.put(layout.hostKey, Array(value.utf8), lease: grant.id) { _ in }
            logger.info("cluster: host lease registered", metadata: ["lease": "\(grant.id)", "ttl_s": "\(grant.ttlSeconds)"])
            join(safeDeadline: deadline)
        }
    }

    private func renew() {
        guard !renewing, let lease else { return }
        renewing = true
        client.keepAlive(lease) { [inbox] result in
            inbox.post { $0.renewed(lease, result) }
        }
    }

    private func renewed(_ renewedLease: EtcdLeaseID, _ result: Result<EtcdKeepAlive, EtcdError>) {
        renewing = false
        guard renewedLease == lease else { return }
        switch result {
        case .success(let renewal):
            nextLeaseCallAt = now.adding(milliseconds: ttl / 3)
            let deadline = safeDeadline(sentAt: renewal.sentAt, ttlSeconds: renewal.ttlSeconds)
            if available {
                safeDeadline = max(safeDeadline ?? deadline, deadline)
                session.clusterRenewed(safeDeadline: safeDeadline!)
                armLossTimer()
            } else {
                join(safeDeadline: deadline)
            }
        case .failure(let error) where error.reason == .leaseNotFound:
            logger.warning("cluster: the host lease expired; registering a new one", metadata: ["lease": "\(renewedLease)"])
            lose()
            lease = nil
            reclaimDue = true
            slots.leaseExpired()
            tickets.leaseExpired()
            // Claims being read back: a slot they took was on the expired lease and is gone.
            for claim in readBacks where !claim.reclaim { session.claimNotApplied(fence: claim.fence) }
            readBacks.removeAll()
            deletions.removeAll()
            // The slots being deleted went with the lease; claims behind them did not apply.
            for claim in behindDeletions { session.claimNotApplied(fence: claim.fence) }
            behindDeletions.removeAll()
            flushClaims()   // the queued claims did not apply either
            nextLeaseCallAt = now
        case .failure(let error):
            logger.warning("cluster: a renewal of the host lease failed", metadata: ["error": "\(error)"])
            nextLeaseCallAt = now.adding(milliseconds: Self.tickMilliseconds)
        }
    }

    /// The host lease is held: once the shared limits agree, the cluster is available.
    private func join(safeDeadline deadline: Instant) {
        guard !agreed else { return restore(safeDeadline: deadline) }
        checkAgreement { link in
            link.agreed = true
            link.restore(safeDeadline: deadline)
        }
    }

    /// The cluster is available again (or for the first time) until `deadline`.
    private func restore(safeDeadline deadline: Instant) {
        guard lease != nil, !available else { return }
        // A renewal sent before an outage and answered after it leaves too little: the loss
        // timer would fire at once. Renew again first, rather than restore and lose at once.
        guard deadline.milliseconds > now.milliseconds + ttl / 3 + Self.tickMilliseconds else {
            nextLeaseCallAt = now
            return
        }
        if reclaimDue {
            reclaimDue = false
            reclaimKeptUnits()
        }
        safeDeadline = deadline
        available = true
        session.clusterRestored(safeDeadline: deadline)
        armLossTimer()
        logger.info("cluster: available", metadata: ["safe_for_ms": "\(deadline.milliseconds(since: now))"])
        poll()
    }

    /// Arms the loss timer a third of the ttl before the safe deadline.
    private func armLossTimer() {
        guard let safeDeadline else { return }
        let lossPoint = safeDeadline.milliseconds > ttl / 3 ? Instant(milliseconds: safeDeadline.milliseconds - ttl / 3) : now
        uv_timer_start(lossTimer, onClusterLossPoint, lossPoint.milliseconds(since: now), 0)
    }

    /// No renewal came in time: the cluster counts as lost (see the type's comment).
    func lossPointReached() {
        guard !stopped, available else { return }
        logger.warning("cluster: lost (no renewal of the host lease acknowledged in time)",
                       metadata: ["safe_for_ms": "\(safeDeadline.map { $0.milliseconds(since: now) } ?? 0)"])
        lose()
    }

    private func lose() {
        uv_timer_stop(lossTimer)
        guard available else { return }
        available = false
        session.clusterLost(safeDeadline: safeDeadline ?? now)
    }
}

/// The etcd client's results waiting for the loop thread: work to run there with the link,
/// queued under a lock and announced with `uv_async_send` (the one libuv call that may be made
/// from another thread; libuv coalesces the wake-ups). `@unchecked`: the async handle is only
/// touched under the lock, and never after `close`.
final class ClusterInbox: @unchecked Sendable {
    typealias Work = @Sendable (ClusterLink) -> Void
    private struct Pending {
        var work: [Work] = []
        var closed = false
    }
    private let pending = Mutex(Pending())
    private let wakeup: UnsafeMutablePointer<uv_async_t>

    init(wakeup: UnsafeMutablePointer<uv_async_t>) {
        self.wakeup = wakeup
    }

    /// Queues `work` for the loop thread and wakes it; dropped once closed.
    func post(_ work: @escaping Work) {
        pending.withLock { pending in
            guard !pending.closed else { return }
            pending.work.append(work)
            uv_async_send(wakeup)
        }
    }

    /// Takes what is queued.
    func take() -> [Work] {
        pending.withLock { pending in
            defer { pending.work.removeAll() }
            return pending.work
        }
    }

    /// Drops what is queued and anything posted later.
    func close() {
        pending.withLock { pending in
            pending.closed = true
            pending.work.removeAll()
        }
    }
}

/// The inbox has work (the link is the server's).
func onClusterInbox(_ handle: UnsafeMutablePointer<uv_async_t>?) {
    guard let handle else { return }
    Server.of(handle.pointee.loop).cluster?.drainInbox()
}

func onClusterTick(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer, let link = Server.of(timer.pointee.loop).cluster else { return }
    link.tickFired()
    link.server.requestCommit()
}

func onClusterLossPoint(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer, let link = Server.of(timer.pointee.loop).cluster else { return }
    link.lossPointReached()
    link.server.requestCommit()
}
