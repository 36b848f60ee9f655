#if canImport(Glibc)
import Glibc
#endif
import TurnstileProtocol

/// Why talking to the daemon failed.
public enum ClientError: Error, Equatable, CustomStringConvertible {
    /// Nothing listens on the socket (or it cannot be reached).
    case unreachable(path: String, reason: String)
    /// The socket is there but this user may not open it (its mode keeps others out): the
    /// daemon's refusal, told as such rather than as "no daemon".
    case forbidden(path: String)
    /// The daemon closed the connection.
    case closed
    /// No answer within the time allowed.
    case timedOut
    /// The daemon sent something that is not a protocol line.
    case protocolViolation(String)
    /// A system call failed.
    case system(String)

    public var description: String {
        switch self {
        case .unreachable(let path, let reason): "no daemon at \(path) (\(reason)): start it with `turnstiled`"
        case .forbidden(let path):
            "forbidden: uid \(getuid()) may not use the turnstiled at \(path) (the socket's permissions keep it out; see socket_mode, allow_uids)"
        case .closed: "the daemon closed the connection"
        case .timedOut: "no answer from the daemon in time"
        case .protocolViolation(let what): "unexpected answer from the daemon: \(what)"
        case .system(let what): what
        }
    }
}

/// A blocking Unix-socket connection that sends lines and reads lines, with timeouts. Kept
/// deliberately simple: one caller, one thread, `poll` for waiting.
public final class SocketStream {
    /// The socket's file descriptor (for `poll` alongside other descriptors).
    public let descriptor: Int32
    private var framer = LineFramer(lineBytesMax: 16 << 20)
    private var lines: [[UInt8]] = []
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    private var closed = false

    /// Connects to a socket path.
    public init(path: String) throws(ClientError) {
        descriptor = try Self.connect(path: path)
    }

    /// Connects a blocking Unix stream socket and returns the bare descriptor: what the stream
    /// uses, and what load generators and tests use where thousands of connections must cost
    /// no buffers.
    public static func connect(path: String) throws(ClientError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            Glibc.close(fd)
            throw .unreachable(path: path, reason: "path longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let code = errno
            let reason = String(cString: strerror(code))
            Glibc.close(fd)
            if code == EACCES || code == EPERM { throw .forbidden(path: path) }
            throw .unreachable(path: path, reason: reason)
        }
        return fd
    }

    deinit { if !closed { Glibc.close(descriptor) } }

    /// Closes the connection.
    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
    }

    /// Whether a complete line is already buffered (then `poll` on the descriptor would
    /// wrongly say there is nothing to read).
    public var hasBufferedLine: Bool { !lines.isEmpty }

    /// Half-closes: no more sending, answers may still be read.
    public func shutdownWrite() {
        shutdown(descriptor, Int32(SHUT_WR))
    }

    /// Writes bytes completely.
    public func write(_ bytes: [UInt8]) throws(ClientError) {
        try Self.send(bytes, on: descriptor)
    }

    /// Sends every byte on a blocking descriptor (no SIGPIPE: a gone peer is `.closed`).
    public static func send(_ bytes: [UInt8], on fd: Int32) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE || errno == ECONNRESET { throw .closed }
                throw .system("send: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// The next line, waiting up to `timeoutMilliseconds` (-1: forever).
    /// - Returns: nil on timeout.
    public func readLine(timeoutMilliseconds: Int32 = -1) throws(ClientError) -> [UInt8]? {
        let deadline: Int64? = timeoutMilliseconds >= 0 ? Self.monotonicMilliseconds() + Int64(timeoutMilliseconds) : nil
        while lines.isEmpty {
            // A zero (or passed) timeout still polls once: "is there something now?".
            let wait = deadline.map { Int32(clamping: max(0, $0 - Self.monotonicMilliseconds())) } ?? -1
            var descriptorPoll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptorPoll, 1, wait)
            if ready < 0 {
                if errno == EINTR { continue }
                throw .system("poll: \(String(cString: strerror(errno)))")
            }
            if ready == 0 {
                if let deadline, Self.monotonicMilliseconds() >= deadline { return nil }
                continue
            }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == ECONNRESET { throw .closed }
                throw .system("recv: \(String(cString: strerror(errno)))")
            }
            if count == 0 { throw .closed }
            let outcome = buffer.withUnsafeBufferPointer { all in
                framer.append(UnsafeBufferPointer(rebasing: all[0..<count])) { line in
                    lines.append(Array(line))
                    return true
                }
            }
            if outcome == .lineTooLong { throw .protocolViolation("an answer line over 16 MiB") }
        }
        return lines.removeFirst()
    }

    /// Milliseconds on the monotonic clock.
    public static func monotonicMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
