import CLibUV
import TurnstileCore
import TurnstileProtocol

extension Server {
    /// How often a waiter that asked for `notify` hears again where it stands.
    static let waitProgressMilliseconds: UInt64 = 10_000

    /// Starts the 10 s progress round if it is not running.
    func startWaitProgress() {
        guard waitProgressTimer == nil else { return }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        uv_timer_start(timer, onWaitProgress, Self.waitProgressMilliseconds, Self.waitProgressMilliseconds)
        waitProgressTimer = timer
    }

    /// Sends `queued` again to each notify waiter whose reason or position changed since it was
    /// last told (protocol/PROTOCOL.md §9.1), at most once per round; stops when no one waits.
    func reportWaitProgress() {
        guard broker.waiterCount > 0 else {
            if let timer = waitProgressTimer { uv_close(UVHandle.handle(timer), onHandleClosedFree) }
            waitProgressTimer = nil
            return
        }
        for entry in broker.waiterProgress(now: now) {
            guard let connection = connections[entry.ticket.client],
                  var pending = connection.pending[entry.ticket.request], pending.notify,
                  pending.toldReason != entry.refusal.reason || pending.toldPosition != entry.position else { continue }
            pending.toldReason = entry.refusal.reason
            pending.toldPosition = entry.position
            connection.pending[entry.ticket.request] = pending
            let id = pending.id.map { ArraySlice($0) }
            send(to: connection) { Answers.queued(&$0, id: id, position: entry.position, entry.refusal) }
        }
        requestCommit()
    }
}
