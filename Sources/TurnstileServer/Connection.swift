import CLibUV
import TurnstileCore
import TurnstileSession

/// One client connection's transport: its libuv pipe and the write in flight. What the
/// protocol knows of it (requests, answers, phase) is its session `state`.
///
/// Memory: the pipe is allocated here and freed in the close callback; libuv's `data` on it
/// points at this object unretained, and the server's `connections` table keeps it alive
/// until the close callback removes it.
final class Connection {
    /// The broker's name for this connection.
    let id: ClientID
    /// The libuv handle.
    let pipe: UnsafeMutablePointer<uv_pipe_t>
    /// The protocol's side; nil until the session opened it (or when it refused it).
    var state: SessionConnection?
    /// Whether a `uv_write` is outstanding (at most one at a time).
    var writing = false
    /// Not read until its unsent answers drain (Server+InputFlow).
    var outputBlocked = false
    /// Closing after its output is written: no more reads.
    var closingAfterFlush = false

    init(id: ClientID) {
        self.id = id
        pipe = .allocate(capacity: 1)
    }

    /// The pipe as a stream.
    var stream: UnsafeMutablePointer<uv_stream_t> { UVHandle.stream(pipe) }

    /// Whether libuv is closing the pipe.
    var isClosing: Bool { uv_is_closing(UVHandle.handle(pipe)) != 0 }

    /// Bytes libuv holds for the kernel (falls as the kernel takes them, not only when a write
    /// completes), told to the session after every write.
    func updateTransportBytes() {
        state?.transportBytes = writing ? Int(uv_stream_get_write_queue_size(stream)) : 0
    }

    /// Bytes this connection makes the daemon hold for it.
    var bufferedBytes: Int { state?.bufferedBytes ?? 0 }
}
