import Logging
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// The machine as a test describes it: a hand-driven clock, tables of live processes and
/// groups, pause flags in memory, a config file that loads or fails.
final class FakeHost: SessionHost {
    var now = Instant(milliseconds: 1_000_000)
    var wall = WallTime(unixMilliseconds: 1_790_000_000_000)
    var daemonPID: Int32 = 4242
    var daemonUID: UInt32 = 1000
    var daemonProcessGroup: Int32 = 4242
    var livePids: Set<Int32> = []
    var liveGroups: [Int32: UInt32] = [:]
    var flags: Set<String> = []
    var pauseDirectory = "/pause"
    var nextConfig: Result<TurnstileConfig, ConfigLoadFailure> = .success(TurnstileConfig())

    func isProcessGone(_ pid: Int32) -> Bool { !livePids.contains(pid) }
    func isProcessGroupAlive(_ pgid: Int32) -> Bool { liveGroups[pgid] != nil }
    func processGroupOwner(_ pgid: Int32) -> UInt32? { liveGroups[pgid] }
    func createPauseFlag(_ project: String) -> String? { flags.insert(project); return nil }
    func removePauseFlag(_ project: String) -> String? { flags.remove(project); return nil }
    func pauseFlags() -> [String]? { Array(flags) }
    func loadConfig() -> Result<TurnstileConfig, ConfigLoadFailure> { nextConfig }
}

/// An in-memory transport around a session, doing what the daemon's loop does at the end of
/// each turn (journal, commands, writes, closes) into arrays a test reads, as SwiftNIO's
/// `EmbeddedChannel` does for a channel pipeline.
final class EmbeddedTransport {
    let host = FakeHost()
    let session: Session
    /// Every journal line committed, in order.
    private(set) var journal: [String] = []
    /// Every command carried out, in order.
    private(set) var commands: [HostCommand] = []
    /// Closes carried out, by connection.
    private(set) var closed: [ClientID: CloseKind] = [:]
    /// Lines each connection received and a test has not read yet.
    private var inbox: [ClientID: [JSONObject]] = [:]
    /// The claims each commit sent to the cluster, one batch per commit that sent any (the
    /// transport sends a batch in one etcd transaction).
    private(set) var claimBatches: [[ClaimRequest]] = []
    /// Units given back, in order.
    private(set) var unclaims: [Unclaim] = []
    /// Whether the next commit fails to write the journal.
    var storageFails = false
    /// Bytes at which a connection's turn stops for backpressure.
    var highWater = 65_536
    private var nextClient: UInt64 = 1

    init(_ configure: (inout TurnstileConfig) -> Void = { _ in }) {
        var config = TurnstileConfig()
        configure(&config)
        host.nextConfig = .success(config)
        let broker = Broker(config: config, random: SplitMix64(seed: 7))
        session = Session(broker: broker, config: config, version: "test", host: host,
                          logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// Opens a connection from a peer (the daemon's own uid unless told otherwise).
    func connect(uid: UInt32? = nil, pid: Int32 = 500) -> SessionConnection {
        let id = ClientID(nextClient)
        nextClient += 1
        let credentials = PeerCredentials(uid: uid ?? host.daemonUID, gid: 0, pid: pid)
        let connection = session.open(id, credentials: credentials, overCapacity: false)
        commit()
        return connection
    }

    /// Sends bytes as one read and commits the turn; returns how the turn ended.
    @discardableResult
    func send(_ text: String, on connection: SessionConnection) -> Session.TurnOutcome {
        let outcome = Array(text.utf8).withUnsafeBufferPointer { session.receive($0, on: connection, highWater: highWater) }
        commit()
        return outcome
    }

    /// Sends one request line.
    @discardableResult
    func request(_ json: String, on connection: SessionConnection) -> Session.TurnOutcome {
        send(json + "\n", on: connection)
    }

    /// Moves the clock; deadlines due are served at the commit.
    func advance(_ milliseconds: UInt64) {
        host.now = host.now.adding(milliseconds: milliseconds)
        host.wall = host.wall.adding(milliseconds: Int64(milliseconds))
        session.serveDeadlines()
        commit()
    }

    /// The loop turn's commit: commands, journal (or a storage failure), writes, closes.
    func commit() {
        while !session.outbox.commands.isEmpty {
            let batch = session.outbox.commands
            session.outbox.commands.removeAll()
            commands += batch
            for case .watchProcess(let pid) in batch where host.isProcessGone(pid) { session.processExited(pid) }
        }
        if storageFails {
            session.storageFailed("disk full (test)")
        } else {
            takeJournal()
            session.storageCommitted()
            // Claims leave only once the turn's fences are durable; a failed commit keeps them.
            if !session.outbox.claims.isEmpty { claimBatches.append(session.outbox.claims) }
            session.outbox.claims.removeAll()
        }
        unclaims += session.outbox.unclaims
        session.outbox.unclaims.removeAll()
        var flushes: [SessionConnection] = []
        session.takeFlushes(into: &flushes)
        for connection in flushes {
            let bytes = connection.output.bytes
            connection.output.removeAll()
            for line in bytes.split(separator: 0x0A) {
                if case .object(let object) = try? JSONParser.parse(Array(line)) { inbox[connection.id, default: []].append(object) }
            }
        }
        for (id, kind) in session.outbox.closes where closed[id] == nil { closed[id] = kind }
        session.outbox.closes.removeAll()
    }

    private func takeJournal() {
        let lines = session.outbox.journal.lines.bytes
        session.outbox.journal.removeAll()
        // Each line is a nine-byte checksum placeholder, then the record.
        journal += lines.split(separator: 0x0A).map { String(decoding: $0.dropFirst(JournalBatch.prefixLength), as: UTF8.self) }
    }

    /// The lines a connection received since the last call.
    func received(_ connection: SessionConnection) -> [JSONObject] {
        defer { inbox[connection.id] = [] }
        return inbox[connection.id] ?? []
    }

    /// The one line a connection received since the last call (nil if not exactly one).
    func answer(_ connection: SessionConnection) -> JSONObject? {
        let lines = received(connection)
        return lines.count == 1 ? lines[0] : nil
    }
}

extension JSONObject {
    /// A string field.
    func string(_ key: String) -> String? { self[key]?.stringValue }
    /// An integer field.
    func int(_ key: String) -> Int64? { self[key]?.numberValue?.int64 }
    /// Whether `ok` is true.
    var ok: Bool { self["ok"]?.boolValue == true }
}
