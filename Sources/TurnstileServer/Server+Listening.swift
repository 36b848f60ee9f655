#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore

/// Why the daemon refuses to start on its socket.
public struct StartupError: Error, CustomStringConvertible {
    public let description: String
}

extension Server {
    /// Longest socket path `bind` takes whole: sun_path is 108 bytes with its NUL, and libuv
    /// 1.44 silently truncates longer ones.
    static let socketPathBytesMax = 107

    /// Every check on the socket path that can refuse the start (protocol/PROTOCOL.md §2.1), made before the
    /// state directory is touched: the path fits in a socket address, its directory only its
    /// owner can write, an exclusive lock beside the socket so two daemons cannot both start,
    /// and a socket file there is stale (no daemon answers on it; it is removed) and nothing else.
    func prepareListening() throws {
        // A socket passed by systemd is systemd's: nothing to check, lock or remove.
        guard settings.systemd?.passedSocket == nil else { return }
        let path = settings.socketPath
        guard path.utf8.count <= Self.socketPathBytesMax else {
            throw StartupError(description: "socket path is \(path.utf8.count) bytes; at most \(Self.socketPathBytesMax) fit in a Unix socket address: \(path)")
        }
        try prepareSocketDirectory(for: path)
        try takeLock(path + ".lock")
        try removeStaleSocket(path)
    }

    /// Opens the socket (after `prepareListening`): mode 0600 from birth (umask), then the
    /// configured mode and group.
    func listen() throws {
        if let passed = settings.systemd?.passedSocket { return try listen(onPassedSocket: passed) }
        let path = settings.socketPath
        let pipe = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
        try check(uv_pipe_init(loop, pipe, 0), "uv_pipe_init")
        listener = pipe
        let oldMask = umask(0o177)
        let bound = uv_pipe_bind(pipe, path)
        umask(oldMask)
        try check(bound, "uv_pipe_bind(\(path))")
        if chmod(path, mode_t(settings.config.access.socketMode)) != 0 {
            throw StartupError(description: "chmod \(path): \(String(cString: strerror(errno)))")
        }
        if let group = settings.config.access.socketGroup {
            guard let gid = groupID(group) else { throw StartupError(description: "socket_group \(group): no such group") }
            if chown(path, uid_t.max, gid) != 0 {
                throw StartupError(description: "chown \(path) to group \(group): \(String(cString: strerror(errno)))")
            }
        }
        try check(uv_listen(UVHandle.stream(pipe), 511, onNewConnection), "uv_listen(\(path))")
    }

    /// Socket activation: listens on the socket systemd created and passed (its path, mode and
    /// group are the `.socket` unit's business, and it outlives the daemon, so the daemon
    /// neither changes nor removes it).
    private func listen(onPassedSocket fd: Int32) throws {
        let pipe = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
        try check(uv_pipe_init(loop, pipe, 0), "uv_pipe_init")
        listener = pipe
        try check(uv_pipe_open(pipe, fd), "uv_pipe_open(fd \(fd) from systemd)")
        try check(uv_listen(UVHandle.stream(pipe), 511, onNewConnection), "uv_listen(fd \(fd) from systemd)")
    }

    /// Creates the socket's directory (0700) if missing, and refuses a directory others may
    /// write into without the sticky bit (they could swap the socket under us).
    private func prepareSocketDirectory(for path: String) throws {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let target = directory.isEmpty ? "/" : directory
        var info = stat()
        if stat(target, &info) != 0 {
            guard errno == ENOENT else {
                throw StartupError(description: "socket directory \(target): \(String(cString: strerror(errno)))")
            }
            guard makeDirectories(target, mode: 0o700) else {
                throw StartupError(description: "cannot create socket directory \(target): \(String(cString: strerror(errno)))")
            }
            guard stat(target, &info) == 0 else { throw StartupError(description: "socket directory \(target) vanished") }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw StartupError(description: "\(target) is not a directory") }
        let ownedBySafeUser = info.st_uid == getuid() || info.st_uid == 0
        let othersMayWrite = info.st_mode & (S_IWGRP | S_IWOTH) != 0
        let sticky = info.st_mode & S_ISVTX != 0
        if !ownedBySafeUser || (othersMayWrite && !sticky) {
            throw StartupError(description: "refusing socket directory \(target): it must belong to you (or root) and not be writable by others (mode \(String(info.st_mode & 0o7777, radix: 8)))")
        }
    }

    /// Holds an exclusive `flock` on `<socket>.lock` for the daemon's life.
    private func takeLock(_ lockPath: String) throws {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupError(description: "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw StartupError(description: "another turnstiled is already running on \(settings.socketPath) (it holds \(lockPath))")
        }
        lockFileDescriptor = fd
    }

    /// Removes a leftover socket file if no daemon answers on it; refuses anything else.
    private func removeStaleSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw StartupError(description: "\(path) exists and is not a socket; remove it or choose another --socket")
        }
        if socketAnswers(path) {
            throw StartupError(description: "another turnstiled is already listening on \(path)")
        }
        unlink(path)
    }

    /// Whether something accepts connections on a Unix socket path.
    private func socketAnswers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    /// A group id from a name or a number.
    private func groupID(_ group: String) -> gid_t? {
        if let number = UInt32(group) { return number }
        guard let entry = getgrnam(group) else { return nil }
        return entry.pointee.gr_gid
    }
}

/// `mkdir -p` with a mode for the directories it creates.
func makeDirectories(_ path: String, mode: mode_t) -> Bool {
    var built = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        built += "/" + component
        if mkdir(built, mode) != 0 && errno != EEXIST { return false }
    }
    return true
}
