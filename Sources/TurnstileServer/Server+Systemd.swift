import TurnstileCore

extension Server {
    /// Tells systemd the daemon is ready (restored and listening), with its first status.
    func notifyReady() {
        guard let systemd = settings.systemd else { return }
        systemd.notify("READY=1\nSTATUS=\(session.statusLine)")
        lastStatusLine = session.statusLine
    }

    /// Once a second: the status line systemd shows (`systemctl status`), when it changed.
    func reportStatusToSystemd() {
        guard let systemd = settings.systemd, !stopping else { return }
        let line = session.statusLine
        guard line != lastStatusLine else { return }
        systemd.notify("STATUS=\(line)")
        lastStatusLine = line
    }
}
