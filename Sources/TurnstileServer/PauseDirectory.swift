#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore

/// The pause flags on disk (protocol/PROTOCOL.md, "Pause flags"): `<pause_dir>/<project>` exists while the project is
/// paused, whoever created it. The directory is watched (inotify through `uv_fs_event_t`)
/// and rescanned every second as a backstop, so an operator's `touch` or `rm` takes effect
/// within a second at worst, usually at once. It only reads and writes the files: the server
/// hands what it reads to the broker.
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

    /// The projects flagged now: every entry of the directory that is a valid project name
    /// (dot-names included: `.meta` is a project like any other). Entries whose name is not
    /// valid UTF-8 or not a valid project name cannot be a flag the daemon made, and are left
    /// alone. Nil when the directory cannot be read (the caller keeps what it knew).
    func flags() -> [String]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        // An array, not a set: file names are distinct byte strings, and two canonically
        // equivalent spellings (NFC and NFD) are two projects, which a Set<String> would merge.
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String? in
                String(validatingCString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            guard let name, name != ".", name != "..", Names.projectNameProblem(name) == nil else { continue }
            names.append(name)
        }
        return names
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
