import CLibUV
import TurnstileSession

extension Server {
    /// Starts the 10 s progress round if it is not running.
    func startWaitProgress() {
        guard waitProgressTimer == nil else { return }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        uv_timer_start(timer, onWaitProgress, Session.waitProgressMilliseconds, Session.waitProgressMilliseconds)
        waitProgressTimer = timer
    }

    /// A round: the session tells notify waiters where they stand now; the round stops when
    /// no one waits.
    func reportWaitProgress() {
        if !session.reportWaitProgress(), let timer = waitProgressTimer {
            uv_close(UVHandle.handle(timer), onHandleClosedFree)
            waitProgressTimer = nil
        }
        requestCommit()
    }
}
