import TurnstileCore
import TurnstileProtocol

/// One client connection as the protocol sees it: who is at the other end, the bytes coming
/// in and going out, the requests it waits on, and where it is in its life.
///
/// The transport keeps its socket apart and reads and writes `output` at the commit.
public final class SessionConnection {
    /// Where a connection is in its life. Requests are acted on only while `open`.
    public enum Phase: Int, Comparable, Sendable {
        /// Reading requests and answering them.
        case open
        /// The peer stopped sending (EOF) with requests still waiting: they are answered, then
        /// the connection closes. The transport checks that the peer is still there.
        case halfClosed
        /// No more reads or answers; its holdings are released (or, while the daemon stops,
        /// kept). The transport writes what is left (`afterFlush`) and closes.
        case closing

        public static func < (lhs: Phase, rhs: Phase) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// The broker's name for this connection.
    public let id: ClientID
    /// Peer credentials from SO_PEERCRED; nil if they could not be read.
    public let credentials: PeerCredentials?
    /// What the peer may do, decided at open and again after every reload.
    public internal(set) var rights = PeerRights.none
    /// Where it is in its life.
    public internal(set) var phase = Phase.open
    /// Splits incoming bytes into lines.
    var framer = LineFramer()
    /// Answer bytes not yet handed to the transport; answers are written straight into it.
    public var output = JSONWriter(capacity: 1024)
    /// Bytes the transport holds beyond `output` (handed to the kernel, not yet taken), which
    /// the transport keeps current: they count against `max_output_bytes`.
    public var transportBytes = 0
    /// Whether it is listed in the outbox's flushes.
    var queuedForFlush = false
    /// The transport's object for this connection (unretained; the transport clears it before
    /// letting the object go), so the commit finds it without a lookup.
    public var transport: UnsafeMutableRawPointer?
    /// Waiting acquires and unparks: the request serial → what to answer it with.
    var pending: [UInt64: PendingRequest] = [:]
    /// Pending requests by their id's key, for `cancel`.
    var pendingByKey: [RequestKey: UInt64] = [:]
    /// Next request serial.
    var nextRequestSerial: UInt64 = 1

    /// A request answered later.
    struct PendingRequest {
        /// The raw `id` to echo.
        var id: [UInt8]?
        /// Its key, for `cancel`.
        var key: RequestKey?
        /// Whether it asked for `queued` events, and the reason and position it was last told.
        var notify = false
        var toldReason: BlockReason?
        var toldPosition = 0
    }

    init(id: ClientID, credentials: PeerCredentials?) {
        self.id = id
        self.credentials = credentials
    }

    /// The peer's uid, for messages and logs (UInt32.max if unknown).
    public var uid: UInt32 { credentials?.uid ?? UInt32.max }
    /// The peer's pid, for logs (0 if unknown).
    public var pid: Int32 { credentials?.pid ?? 0 }
    /// Whether the peer may use the admin ops.
    var isAdmin: Bool { rights == .admin }
    /// Whether it no longer reads or answers.
    public var isClosing: Bool { phase == .closing }
    /// Requests waiting for an answer.
    public var pendingCount: Int { pending.count }
    /// Whether lines read are waiting for their turn.
    public var hasBacklog: Bool { framer.hasBacklog }

    /// Bytes this connection makes the daemon hold for it.
    public var bufferedBytes: Int { output.count + transportBytes }

    /// A ticket for a request that may have to wait; nothing is stored until it does.
    func nextTicket() -> Ticket {
        defer { nextRequestSerial += 1 }
        return Ticket(client: id, request: nextRequestSerial)
    }

    /// Registers a request that waits, to answer it later.
    /// - Parameter told: the `queued` event sent with it (notify), if one was.
    func remember(_ ticket: Ticket, id rawID: ArraySlice<UInt8>?, key: RequestKey?, told: (BlockReason, Int)? = nil) {
        pending[ticket.request] = PendingRequest(id: rawID.map(Array.init), key: key, notify: told != nil,
                                                 toldReason: told?.0, toldPosition: told?.1 ?? 0)
        if let key { pendingByKey[key] = ticket.request }
    }

    /// Forgets a pending request when it is answered.
    func forget(_ serial: UInt64) -> PendingRequest? {
        guard let request = pending.removeValue(forKey: serial) else { return nil }
        if let key = request.key, pendingByKey[key] == serial { pendingByKey[key] = nil }
        return request
    }
}
