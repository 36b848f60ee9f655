import CLibUV
import TurnstileCore
import TurnstileProtocol

/// One client connection: its libuv pipe, who is at the other end, the bytes coming in and
/// going out, and the requests it is waiting on.
///
/// Memory: the pipe is allocated here and freed in the close callback; libuv's `data` on it
/// points at this object unretained, and the server's `connections` table keeps it alive
/// until the close callback removes it.
final class Connection {
    /// The broker's name for this connection.
    let id: ClientID
    /// The libuv handle.
    let pipe: UnsafeMutablePointer<uv_pipe_t>
    /// Peer credentials from SO_PEERCRED; nil if they could not be read.
    var credentials: PeerCredentials?
    /// What the peer may do, decided at accept and again after every reload.
    var rights = PeerRights.none
    /// The peer's uid, for messages and logs (UInt32.max if unknown).
    var uid: UInt32 { credentials?.uid ?? UInt32.max }
    /// The peer's pid, for logs (0 if unknown).
    var pid: Int32 { credentials?.pid ?? 0 }
    /// Whether the peer may use the admin ops.
    var isAdmin: Bool { rights == .admin }
    /// Splits incoming bytes into lines.
    var framer = LineFramer()
    /// Answer bytes not yet handed to the kernel; answers are written straight into it.
    var output = JSONWriter(capacity: 1024)
    /// Whether a `uv_write` is outstanding (at most one at a time).
    var writing = false
    /// Whether it is listed for the next flush.
    var queuedForFlush = false
    /// Waiting acquires and unparks: the daemon's request serial → the echoed id.
    var pending: [UInt64: PendingRequest] = [:]
    /// Pending requests by their id's key, for `cancel`.
    var pendingByKey: [RequestKey: UInt64] = [:]
    /// Next request serial.
    var nextRequestSerial: UInt64 = 1
    /// Not read until its unsent answers drain (Server+InputFlow).
    var outputBlocked = false
    /// Whether it asked for `watch` events.
    var watching = false
    /// The peer closed its sending side: answer what is pending, then close.
    var inputClosed = false
    /// Being closed: no more reads or answers.
    var closing = false

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

    init(id: ClientID) {
        self.id = id
        pipe = .allocate(capacity: 1)
    }

    /// The pipe as a stream.
    var stream: UnsafeMutablePointer<uv_stream_t> { UVHandle.stream(pipe) }

    /// Bytes this connection makes the daemon hold for it.
    /// libuv's write queue shrinks as the kernel takes bytes, so this falls while a large
    /// answer is being read, not only when its write completes.
    var bufferedBytes: Int { output.count + (writing ? Int(uv_stream_get_write_queue_size(stream)) : 0) }

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
