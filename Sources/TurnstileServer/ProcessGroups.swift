#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileCore

/// Stops the process groups of leases that ended while their work still ran, and tells the
/// server when each group is gone, so that a slot is free only when its work is
/// (protocol/PROTOCOL.md §10.10).
///
/// How a group is watched: its members are found through /proc (every process whose `stat`
/// names the group), each is watched with a pidfd on the loop, and when one exits the group
/// is checked again (members forked meanwhile are found then). A 250 ms check backs this up
/// for members /proc does not show (`hidepid`) or that joined after the last scan. cgroup v2
/// `cgroup.events` is not used: it needs a delegated cgroup per command, which a plain
/// `turnstile run` does not have.
///
/// How it is stopped: SIGTERM to the group at once, SIGKILL after `kill_grace_ms`. Where the
/// daemon may not signal the group (another user's, and the daemon is not root) it waits.
final class ProcessGroups {
    private unowned let server: Server
    private var groups: [Int32: Drain] = [:]
    /// The group of each watched member.
    private var groupOf: [Int32: Int32] = [:]

    /// One group being drained: its member watches and its timers.
    private final class Drain {
        var members: [Int32: (poll: UnsafeMutablePointer<uv_poll_t>, fd: Int32)] = [:]
        let check: UnsafeMutablePointer<uv_timer_t>
        var kill: UnsafeMutablePointer<uv_timer_t>?

        init(check: UnsafeMutablePointer<uv_timer_t>) { self.check = check }
    }

    init(server: Server) {
        self.server = server
    }

    /// Whether any process of group `pgid` still runs; zombies do not count (they are dead,
    /// waiting for their parent). Cheap when the group is gone: one `kill(-pgid, 0)`.
    static func isAlive(_ pgid: Int32) -> Bool {
        guard pgid > 0 else { return false }
        if kill(-pgid, 0) != 0 && errno == ESRCH { return false }
        // The usual case, a group whose leader runs, costs one read of /proc; only a group
        // whose leader is gone (or a zombie) is looked for member by member.
        if let leader = processStat(pgid), leader.group == pgid, leader.state != "Z" && leader.state != "X" { return true }
        guard let members = members(of: pgid) else { return true }
        // kill() counts zombies; /proc tells them apart. A group /proc shows nothing of (hidepid)
        // is taken as alive: the periodic check finds its end through kill() alone.
        return !members.isEmpty || !canSeeOthers
    }

    /// The uid that owns group `pgid`: its leader's, or (the leader gone) a live member's.
    /// nil if /proc shows none of them.
    static func owner(of pgid: Int32) -> UInt32? {
        var info = stat()
        if stat("/proc/\(pgid)", &info) == 0, let leader = processStat(pgid), leader.group == pgid { return info.st_uid }
        for pid in members(of: pgid) ?? [] where stat("/proc/\(pid)", &info) == 0 { return info.st_uid }
        return nil
    }

    /// Whether /proc shows other users' processes (no `hidepid`): checked once, on pid 1.
    private static let canSeeOthers: Bool = access("/proc/1/stat", R_OK) == 0

    /// Every live (not zombie) process in group `pgid`, or nil if /proc cannot be read.
    static func members(of pgid: Int32) -> [Int32]? {
        guard let directory = opendir("/proc") else { return nil }
        defer { closedir(directory) }
        var found: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name), let stat = processStat(pid) else { continue }
            if stat.group == pgid && stat.state != "Z" && stat.state != "X" { found.append(pid) }
        }
        return found
    }

    /// A process's state letter and process group, from /proc/PID/stat.
    private static func processStat(_ pid: Int32) -> (state: Character, group: Int32)? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let line = buffer[..<count]
        // "pid (comm) S ppid pgrp ...": comm may hold spaces and ')', so start after the last ')'.
        guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = line[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 3, let state = fields[0].first, let group = Int32(String(decoding: fields[2], as: UTF8.self))
        else { return nil }
        return (Character(UnicodeScalar(state)), group)
    }

    /// Starts stopping and watching a group (once per group; later calls do nothing). SIGKILL
    /// follows SIGTERM after `kill_grace_ms`, or at `killBy` if that is sooner.
    func drain(_ pgid: Int32, killBy: Instant? = nil) {
        if let drain = groups[pgid] {
            if let killBy { hasten(pgid, drain, killBy: killBy) }
            return
        }
        // Never a group no peer may bind (init's, every process's, the daemon's own): such a
        // pgid can only come from a damaged state file. Its lease is let go.
        guard pgid > 1, pgid != getpgrp() else {
            server.logger.warning("not signalling process group \(pgid): no lease may be bound to it")
            server.session.processGroupGone(pgid)
            return server.requestCommit()
        }
        let check = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(server.loop, check)
        uv_handle_set_data(UVHandle.handle(check), UnsafeMutableRawPointer(bitPattern: Int(pgid)))
        uv_timer_start(check, onProcessGroupCheck, 250, 250)
        let drain = Drain(check: check)
        groups[pgid] = drain
        if kill(-pgid, SIGTERM) == 0 {
            var grace = UInt64(server.session.config.limits.killGraceMilliseconds)
            if let killBy { grace = min(grace, killBy.milliseconds(since: server.now)) }
            let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
            uv_timer_init(server.loop, timer)
            uv_handle_set_data(UVHandle.handle(timer), UnsafeMutableRawPointer(bitPattern: Int(pgid)))
            uv_timer_start(timer, onProcessGroupKill, grace, 0)
            drain.kill = timer
        } else if errno == EPERM {
            server.logger.warning("may not signal process group \(pgid) (another user's): waiting for it to end")
        }
        self.check(pgid)
    }

    /// A group already draining must be gone by `killBy` (its lease's shared unit is lost
    /// then): its SIGKILL comes no later.
    private func hasten(_ pgid: Int32, _ drain: Drain, killBy: Instant) {
        guard let timer = drain.kill else { return }
        let left = killBy.milliseconds(since: server.now)
        if uv_timer_get_due_in(timer) > left { uv_timer_start(timer, onProcessGroupKill, left, 0) }
    }

    /// Checks a group again: gone, or watch the members found since.
    func check(_ pgid: Int32) {
        guard let drain = groups[pgid] else { return }
        guard Self.isAlive(pgid) else { return finish(pgid) }
        for pid in Self.members(of: pgid) ?? [] where drain.members[pid] == nil {
            let fd = turnstile_pidfd_open(pid)
            guard fd >= 0 else { continue }
            let poll = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
            guard uv_poll_init(server.loop, poll, fd) == 0 else {
                poll.deallocate()
                close(fd)
                continue
            }
            uv_handle_set_data(UVHandle.handle(poll), UnsafeMutableRawPointer(bitPattern: Int(pid)))
            uv_poll_start(poll, Int32(UV_READABLE.rawValue), onProcessGroupMemberExit)
            drain.members[pid] = (poll, fd)
            groupOf[pid] = pgid
        }
    }

    /// A watched member exited: stop watching it and check its group again.
    func memberExited(_ pid: Int32) {
        guard let pgid = groupOf.removeValue(forKey: pid), let drain = groups[pgid],
              let member = drain.members.removeValue(forKey: pid) else { return }
        closeWatch(member)
        check(pgid)
    }

    private func closeWatch(_ member: (poll: UnsafeMutablePointer<uv_poll_t>, fd: Int32)) {
        uv_poll_stop(member.poll)
        Glibc.close(member.fd)
        uv_close(UVHandle.handle(member.poll), onHandleClosedFree)
    }

    /// The grace is over: SIGKILL to whatever of the group still runs.
    func killRemaining(_ pgid: Int32) {
        guard groups[pgid] != nil else { return }
        if kill(-pgid, SIGKILL) == 0 {
            server.logger.warning("process group \(pgid) outlived kill_grace_ms after SIGTERM: sent SIGKILL")
        }
        check(pgid)
    }

    /// The group is gone: close its watches and tell the server.
    private func finish(_ pgid: Int32) {
        close(pgid)
        server.session.processGroupGone(pgid)
        server.requestCommit()
    }

    private func close(_ pgid: Int32) {
        guard let drain = groups.removeValue(forKey: pgid) else { return }
        for (pid, member) in drain.members {
            groupOf[pid] = nil
            closeWatch(member)
        }
        uv_close(UVHandle.handle(drain.check), onHandleClosedFree)
        if let timer = drain.kill { uv_close(UVHandle.handle(timer), onHandleClosedFree) }
    }

    /// Closes every watch (at stop; draining leases are saved and watched again after a restart).
    func stopAll() {
        for pgid in Array(groups.keys) { close(pgid) }
    }
}
