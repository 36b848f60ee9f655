#if canImport(Glibc)
import Glibc
#endif

/// One daemon owns a state directory (PROTOCOL.md, "State and storage"): an exclusive `flock`
/// on `<state dir>/lock`, taken before anything in the directory is read or written and held
/// for the daemon's life. The owner writes its pid and socket into the file, so a second
/// daemon pointed at the directory (on any socket) refuses to start naming them. The file is
/// never removed: unlinking a lock file lets two processes lock two different files.
final class StateDirectoryLock {
    private var descriptor: Int32

    /// Takes the lock and records the owner.
    /// - Parameters:
    ///   - directory: the state directory (it exists).
    ///   - socketPath: this daemon's socket, written into the lock file.
    /// - Throws: a `StartupError` naming the owner when another daemon holds the directory.
    init(directory: String, socketPath: String) throws {
        let path = directory + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw StartupError(description: "cannot open the state directory lock \(path): \(String(cString: strerror(errno)))")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let reason = errno == EWOULDBLOCK ? nil : String(cString: strerror(errno))
            let owner = Self.owner(fd)
            Glibc.close(fd)
            if let reason { throw StartupError(description: "cannot lock the state directory \(directory): \(reason)") }
            throw StartupError(description: "the state directory \(directory) belongs to another turnstiled (\(owner)); "
                               + "stop it or choose another --state-dir")
        }
        descriptor = fd
        let record = Array("pid \(getpid()) socket \(socketPath)\n".utf8)
        // The owner line is a courtesy for the refusal message; the lock is what counts.
        if ftruncate(fd, 0) == 0 { _ = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
    }

    /// What the owner wrote into the lock file (`pid N socket PATH`), or a placeholder.
    private static func owner(_ fd: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 4200)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return "its pid and socket are not recorded yet" }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        return text.split(separator: "\n").first.map(String.init) ?? text
    }

    /// Releases the lock (at stop; exiting releases it too).
    func release() {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
    }
}
