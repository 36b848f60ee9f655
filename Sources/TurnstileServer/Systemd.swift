#if canImport(Glibc)
import Glibc
#endif
import CLibUV

/// What systemd hands a service it starts, read from the environment the way `sd_listen_fds`
/// and `sd_notify` read it, without libsystemd (README, "Installing"):
/// - socket activation: `LISTEN_PID` (this process) and `LISTEN_FDS` (how many descriptors,
///   from 3 on) name a listening socket systemd created, with the mode its `.socket` unit set;
/// - readiness: `NOTIFY_SOCKET` names a datagram socket to which `READY=1`, `STOPPING=1` and
///   `STATUS=…` lines are sent, one datagram each.
/// Both variables are removed from the environment once read, so that commands the daemon
/// starts (the `on_trip` hook) do not take them for their own.
public struct Systemd: Sendable {
    /// The first descriptor systemd passes (SD_LISTEN_FDS_START).
    static let firstPassedDescriptor: Int32 = 3

    /// The listening socket systemd passed, if it passed one to this process.
    public let passedSocket: Int32?
    /// Where readiness and status go, if systemd asked for them.
    let notifyAddress: sockaddr_un?
    let notifyAddressLength: socklen_t

    /// Reads (and removes) the variables.
    /// - Throws: a description when systemd passed descriptors that cannot be the daemon's
    ///   socket (several, or one that is not a listening Unix stream socket).
    public static func fromEnvironment() throws -> Systemd {
        defer {
            for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"] { unsetenv(name) }
        }
        return Systemd(passedSocket: try passedListeningSocket(), notify: notifyTarget())
    }

    private init(passedSocket: Int32?, notify: (sockaddr_un, socklen_t)?) {
        self.passedSocket = passedSocket
        notifyAddress = notify?.0
        notifyAddressLength = notify?.1 ?? 0
    }

    private static func variable(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    private static func passedListeningSocket() throws -> Int32? {
        guard let pid = variable("LISTEN_PID").flatMap({ Int32($0) }), pid == getpid(),
              let count = variable("LISTEN_FDS").flatMap({ Int($0) }), count > 0 else { return nil }
        guard count == 1 else {
            throw StartupError(description: "systemd passed \(count) sockets (LISTEN_FDS); turnstiled listens on exactly one")
        }
        let fd = firstPassedDescriptor
        var type: Int32 = 0, listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        var address = sockaddr_un()
        var addressLength = socklen_t(MemoryLayout<sockaddr_un>.size)
        let isUnixStream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && type == Int32(SOCK_STREAM.rawValue)
            && withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &addressLength) }
            } == 0 && address.sun_family == sa_family_t(AF_UNIX)
        length = socklen_t(MemoryLayout<Int32>.size)
        guard isUnixStream, getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening != 0 else {
            throw StartupError(description: "the socket systemd passed (fd 3) is not a listening Unix stream socket")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }

    /// `NOTIFY_SOCKET` as an address: a path, or an abstract name written with a leading `@`.
    private static func notifyTarget() -> (sockaddr_un, socklen_t)? {
        guard let name = variable("NOTIFY_SOCKET"), !name.isEmpty else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity, bytes[0] == UInt8(ascii: "/") || bytes[0] == UInt8(ascii: "@") else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
            if bytes[0] == UInt8(ascii: "@") { raw[0] = 0 }
        }
        let length = MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == UInt8(ascii: "@") ? 0 : 1)
        return (address, socklen_t(length))
    }

    /// Sends one notification (`READY=1`, `STOPPING=1`, `STATUS=…`), if systemd asked for them.
    /// Best effort, as sd_notify is: a manager that is gone changes nothing for the daemon.
    public func notify(_ state: String) {
        guard var address = notifyAddress else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL), $0, notifyAddressLength)
            }
        }
    }
}
