/// Counters and wait statistics of the broker (tandem's scheduler metrics, extended): what
/// `status` and `metrics` report.
public struct BrokerMetrics: Sendable, Equatable {
    /// Leases granted (immediately or from the queue). Restored leases are not counted.
    public var admittedTotal: UInt64 = 0
    /// Leases ended, whatever the cause (so admitted − completed is what is held).
    public var completedTotal: UInt64 = 0
    /// Leases ended by their holder's `release`.
    public var releasedTotal: UInt64 = 0
    /// Leases ended because their deadline passed.
    public var expiredTotal: UInt64 = 0
    /// Leases taken back because their connection closed or their process died.
    public var reclaimedTotal: UInt64 = 0
    /// Of `reclaimedTotal`: connections closed.
    public var disconnectedTotal: UInt64 = 0
    /// Of `reclaimedTotal`: bound processes exited.
    public var processExitedTotal: UInt64 = 0
    /// Leases revoked by an administrator.
    public var revokedTotal: UInt64 = 0
    /// Leases that ended while their process group ran, whose slot came free when it was gone.
    public var drainedTotal: UInt64 = 0
    /// Releases that said how the work finished, with exit code 0.
    public var finishedSuccessTotal: UInt64 = 0
    /// Releases that said how the work finished, with another code or a signal.
    public var finishedFailureTotal: UInt64 = 0
    /// Acquires refused at once (`wait_ms` 0).
    public var refusedTotal: UInt64 = 0
    /// Waits that ended in `timeout`.
    public var timedOutTotal: UInt64 = 0
    /// Admission checks dispatch made on queued waiters. Dispatch checks one waiter per group
    /// of alike waiters (`Demand`), so a freed slot that a thousand waiters on one full model
    /// cannot use adds one here, not a thousand.
    public var dispatchChecksTotal: UInt64 = 0

    /// How many recent waits the averages cover.
    public static let waitWindow = 1000
    private var waits: [UInt64] = []
    private var waitsNext = 0

    public init() {}

    /// Records a grant and how long it waited (0 for an immediate grant).
    mutating func recordGrant(waitedMilliseconds: UInt64) {
        admittedTotal += 1
        if waits.count < Self.waitWindow {
            waits.append(waitedMilliseconds)
        } else {
            waits[waitsNext] = waitedMilliseconds
            waitsNext = (waitsNext + 1) % Self.waitWindow
        }
    }

    /// Records a lease's end.
    mutating func recordEnd(_ cause: LeaseEndCause) {
        completedTotal += 1
        switch cause {
        case .released: releasedTotal += 1
        case .expired: expiredTotal += 1
        case .revoked: revokedTotal += 1
        case .disconnected:
            reclaimedTotal += 1
            disconnectedTotal += 1
        case .processExited:
            reclaimedTotal += 1
            processExitedTotal += 1
        case .drained: break
        }
    }

    /// Records how a released lease's work finished.
    mutating func recordFinish(_ exit: ExitStatus) {
        if exit == .code(0) { finishedSuccessTotal += 1 } else { finishedFailureTotal += 1 }
    }

    /// Integer mean of the last `waitWindow` waits, 0 with none.
    public var averageWaitMilliseconds: UInt64 {
        waits.isEmpty ? 0 : waits.reduce(0, +) / UInt64(waits.count)
    }

    /// 95th percentile of the last `waitWindow` waits, as tandem computes it: the element at
    /// `round(count × 0.95)` of the sorted waits, clamped to the last; 0 with none.
    public var p95WaitMilliseconds: UInt64 {
        guard !waits.isEmpty else { return 0 }
        let sorted = waits.sorted()
        let index = Int((Double(sorted.count) * 0.95).rounded())
        return sorted[min(index, sorted.count - 1)]
    }
}
