import CLibUV
import Logging
import TurnstileCore
import TurnstileSession

extension Server {
    /// How often a failed commit is tried again while nothing else happens.
    static let storageRetryMilliseconds: UInt64 = 250

    /// Makes the turn's changes durable before its answers leave. When that fails the session
    /// takes the turn's grants back (answered `unavailable` with reason `storage`) and a timer
    /// tries the write again; when a try succeeds, grants resume.
    /// - Returns: whether the turn's changes are durable.
    @discardableResult
    func commitStorage() -> Bool {
        store.adopt(&session.outbox.journal)
        if store.commit(fenceHighWater: session.broker.fenceHighWater) {
            session.storageCommitted()
            stopStorageRetries()
            return true
        }
        session.storageFailed(store.failure ?? "unknown")
        // Records that undo the withdrawn grants wait with the kept batch.
        store.adopt(&session.outbox.journal)
        performCommands()
        startStorageRetries()
        return false
    }

    private func startStorageRetries() {
        guard storageRetryTimer == nil else { return }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        uv_timer_start(timer, onStorageRetry, Self.storageRetryMilliseconds, Self.storageRetryMilliseconds)
        storageRetryTimer = timer
    }

    /// Stops the retry timer (recovered, or stopping).
    func stopStorageRetries() {
        guard let storageRetryTimer else { return }
        uv_close(UVHandle.handle(storageRetryTimer), onHandleClosedFree)
        self.storageRetryTimer = nil
    }
}

/// The storage retry timer fired: commit again (and send what waited on it). The timer is
/// owned by the server and freed by `onHandleClosedFree` when closed.
func onStorageRetry(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
    guard let timer else { return }
    Server.of(timer.pointee.loop).requestCommit()
}
