import Foundation
import TurnstileClient
import TurnstileProtocol

/// A connection that sends raw bytes and reads raw lines: for bad input, pipelining and
/// protocol vectors, where the typed client would get in the way.
final class RawConnection {
    let stream: SocketStream

    init(_ daemon: Daemon) throws {
        stream = try SocketStream(path: daemon.socketPath)
    }

    func send(_ text: String) throws { try stream.write(Array(text.utf8)) }
    func send(bytes: [UInt8]) throws { try stream.write(bytes) }

    /// The next line as an object, within 10 s.
    func receive(within milliseconds: Int32 = 10_000) throws -> JSONObject? {
        guard let line = try stream.readLine(timeoutMilliseconds: milliseconds) else { return nil }
        return try JSONParser.parse(line).objectValue
    }

    /// Whether the daemon closed the connection (EOF) within the time given.
    func closedByDaemon(within milliseconds: Int32 = 10_000) -> Bool {
        do {
            while try stream.readLine(timeoutMilliseconds: milliseconds) != nil {}
            return false
        } catch {
            return error == .closed
        }
    }

    func close() { stream.close() }
}
