import TurnstileCore

extension Server {
    /// Tells systemd the daemon is ready (restored and listening), with its first status.
    func notifyReady() {
        guard let systemd = settings.systemd else { return }
        systemd.notify("READY=1\nSTATUS=\(statusLine)")
        lastStatusLine = statusLine
    }

    /// Once a second: the status line systemd shows (`systemctl status`), when it changed.
    func reportStatusToSystemd() {
        guard let systemd = settings.systemd, !stopping else { return }
        let line = statusLine
        guard line != lastStatusLine else { return }
        systemd.notify("STATUS=\(line)")
        lastStatusLine = line
    }

    /// "3/8 permits in use, 2 waiting, 14 connections".
    private var statusLine: String {
        "\(broker.permitsInUse)/\(settings.config.limits.global) permits in use, \(broker.waiterCount) waiting, "
            + "\(connections.count) connections"
    }
}
