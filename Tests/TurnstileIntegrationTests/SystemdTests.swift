import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Started by systemd (README, "Installing"): a socket passed in with `LISTEN_FDS` is used as it
/// is, and readiness and status go to `NOTIFY_SOCKET`. A small launcher does what systemd does:
/// it creates the socket, puts it at descriptor 3, sets `LISTEN_PID` to its own pid and execs
/// the daemon.
@Suite("systemd activation and notification", .timeLimit(.minutes(1)))
struct SystemdTests {
    static let launcher = """
        import os, socket, sys
        path, mode = sys.argv[1], int(sys.argv[2], 8)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, mode)
        listener.listen(64)
        os.dup2(listener.fileno(), 3)
        os.set_inheritable(3, True)
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
        os.execve(sys.argv[3], sys.argv[3:], env)
        """

    @Test func aSocketPassedBySystemdIsUsedAndKeptAsItIs() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/activated.sock"
        let daemon = try ChildProcess(["/usr/bin/python3", "-c", Self.launcher, socket, "0640", Binaries.turnstiled,
                                       "--socket", directory + "/unused.sock", "--state-dir", directory + "/state"])
        defer {
            daemon.signal(SIGKILL)
            _ = daemon.waitForExit()
        }
        #expect(daemon.waitForOutput("turnstiled ready"), "\(daemon.output)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/unused.sock"), "no socket of its own")
        let client = try TurnstileClient(socketPath: socket)
        #expect(try client.call("acquire", timeoutMilliseconds: 10_000).ok)
        let mode = (try FileManager.default.attributesOfItem(atPath: socket)[.posixPermissions] as? Int) ?? -1
        #expect(mode == 0o640, "the .socket unit's mode is kept")
        client.close()
        daemon.signal(SIGTERM)
        _ = daemon.waitForExit()
        #expect(daemon.exitCode == 0)
        #expect(FileManager.default.fileExists(atPath: socket), "the socket is systemd's: it is not removed")
    }

    @Test func readinessAndStatusAndStoppingAreNotified() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let notify = directory + "/notify"
        let listener = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in notify.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        func datagram() -> String? {
            var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 10_000) > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(listener, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
        }
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notify
        let socketPath = directory + "/t.sock"
        let daemon = try Daemon.startBare(in: directory, environment: environment)
        defer {
            daemon.signal(SIGKILL)
            _ = daemon.waitForExit()
        }
        let ready = datagram()
        #expect(ready?.hasPrefix("READY=1\nSTATUS=0/8 permits in use, 0 waiting") == true, "\(ready ?? "nothing")")
        #expect(try TurnstileClient(socketPath: socketPath).call("hello", timeoutMilliseconds: 1000).ok,
                "READY=1 comes once the socket accepts connections")
        let holder = try TurnstileClient(socketPath: socketPath)
        #expect(try holder.call("acquire", timeoutMilliseconds: 10_000).ok)
        let status = datagram()
        #expect(status?.hasPrefix("STATUS=1/8 permits in use") == true, "\(status ?? "nothing")")
        daemon.signal(SIGTERM)
        #expect(datagram() == "STOPPING=1")
        _ = daemon.waitForExit()
        #expect(daemon.exitCode == 0)
    }
}
