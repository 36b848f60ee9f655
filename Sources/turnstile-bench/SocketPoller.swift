#if canImport(Glibc)
import Glibc
#endif
import TurnstileClient

/// Waits on many client sockets at once with `poll`, so one load-generator thread keeps
/// dozens of connections busy without thread-per-connection switching (which would make the
/// generator, not the server, the thing measured).
struct SocketPoller {
    private var entries: [pollfd]

    init(_ descriptors: [Int32]) {
        entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    }

    /// Waits up to `timeoutMilliseconds` and calls `body` with the index of each readable
    /// socket (no array of them built per call: the ping-pong loop calls this per batch).
    mutating func forEachReady(timeoutMilliseconds: Int32, _ body: (Int) -> Void) {
        let count = entries.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        guard count > 0 else { return }
        for index in entries.indices where entries[index].revents != 0 { body(index) }
    }
}

/// Connects a Unix stream socket (a bare descriptor: see `SocketStream.connect`).
func connectUnix(_ path: String) -> Int32? { try? SocketStream.connect(path: path) }

/// Writes everything (blocking socket); false if the peer went away.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool { (try? SocketStream.send(bytes, on: fd)) != nil }

/// Reads one line from a blocking socket, a byte at a time (for short answers on connections
/// that must not read past their line); nil if the peer closed first.
func readLine(_ fd: Int32) -> String? {
    var line: [UInt8] = []
    var byte: UInt8 = 0
    while recv(fd, &byte, 1, 0) == 1 {
        if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
        line.append(byte)
    }
    return nil
}
