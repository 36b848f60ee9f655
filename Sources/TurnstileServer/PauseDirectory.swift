#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore

/// The pause flags on disk (SPEC §1.7): `<pause_dir>/<project>` exists while the project is
/// paused, whoever created it. The directory is watched (inotify through `uv_fs_event_t`)
/// and rescanned every second as a backstop, so an operator's `touch` or `rm` takes effect
/// within a second at worst, usually at once.
final class PauseDirectory {
    let path: String
    private unowned let server: Server
    private var events: UnsafeMutablePointer<uv_fs_event_t>?
    private var rescanTimer: UnsafeMutablePointer<uv_timer_t>?

    /// Creates the directory (0700) if it is missing.
    init(path: String, server: Server) throws {
        self.path = path
        self.server = server
        guard makeDirectories(path, mode: 0o700) else {
            throw StartupError(description: "cannot create the pause directory \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Starts watching.
    func start() throws {
        let events = UnsafeMutablePointer<uv_fs_event_t>.allocate(capacity: 1)
        try check(uv_fs_event_init(server.loop, events), "uv_fs_event_init")
        if uv_fs_event_start(events, onPauseDirectoryChanged, path, 0) != 0 {
            server.logger.warning("cannot watch the pause directory; rescanning it every second", metadata: ["dir": "\(path)"])
        }
        self.events = events
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        try check(uv_timer_init(server.loop, timer), "uv_timer_init")
        try check(uv_timer_start(timer, onPauseRescanTick, 1000, 1000), "uv_timer_start")
        rescanTimer = timer
    }

    func stop() {
        if let events { uv_close(UVHandle.handle(events), onHandleClosedFree) }
        if let rescanTimer { uv_close(UVHandle.handle(rescanTimer), onHandleClosedFree) }
        events = nil
        rescanTimer = nil
    }

    /// Reads the directory and makes the broker's paused set match it.
    func rescan() {
        guard let directory = opendir(path) else { return }
        defer { closedir(directory) }
        var names = Set<String>()
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasPrefix(".") { continue }
            names.insert(name)
        }
        server.broker.syncPaused(names, now: server.now)
        server.processEffects()
    }

    /// Creates a project's flag file.
    /// - Returns: nil on success, else why not.
    func create(_ project: String) -> String? {
        let fd = open(path + "/" + project, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { return "cannot create the pause flag \(path)/\(project): \(String(cString: strerror(errno)))" }
        close(fd)
        return nil
    }

    /// Removes a project's flag file (absent is fine).
    /// - Returns: nil on success, else why not.
    func remove(_ project: String) -> String? {
        if unlink(path + "/" + project) != 0 && errno != ENOENT {
            return "cannot remove the pause flag \(path)/\(project): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
