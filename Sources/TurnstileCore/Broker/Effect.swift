/// Something the daemon must do because the broker's state changed: answer a waiting request,
/// tell a holder its lease ended, tell watchers, journal a lease, watch a process, touch a
/// pause flag, run a hook.
///
/// Each broker operation returns its effects in its `Transition`; the daemon turns each into
/// I/O. The effects are facts, not commands to a particular transport: the tests read the
/// same list.
public enum Effect: Sendable, Equatable {
    /// An acquire or unpark is answered with a grant, at once or from the queue: every grant
    /// is answered from this one effect.
    case granted(Ticket, Lease)
    /// A waiting acquire or unpark is answered with a failure.
    case failed(Ticket, WaitFailure)
    /// A lease came into being (immediately or from the queue).
    case leaseGranted(Lease)
    /// A lease ended.
    case leaseEnded(Lease, LeaseEndCause)
    /// A lease ended (by `drain.cause`) while its process group ran: its slot stays taken
    /// until the group is gone. `client` is the connection that held it (for holder events).
    case leaseDraining(Lease)
    /// A lease's binding, pid, parking or model changed (journal it).
    case leaseChanged(Lease)
    /// Start watching a process: the first live lease bound to it appeared.
    case watchProcess(Int32)
    /// Stop watching a process: its last lease ended.
    case unwatchProcess(Int32)
    /// A project became paused (by `pause`, a trip, or a flag file appearing).
    case paused(project: String)
    /// A project was resumed.
    case resumed(project: String)
    /// A project's circuit breaker tripped.
    case tripped(project: String, failures: Int)
    /// A provider was throttled for a tenant; `retryAfterMilliseconds` is the time in force.
    case throttled(provider: String, tenant: String, retryAfterMilliseconds: UInt64)
    /// An operator lifted a provider's throttle for a tenant before its end.
    case throttleCleared(provider: String, tenant: String)
    /// A `record` with a subscription-limit error flagged a model as full for `milliseconds`
    /// (the transport shares the flag across hosts when `[cluster]` shares
    /// `subscription_limits`).
    case flagged(model: String, milliseconds: UInt64)
    /// An operator lifted a model's subscription-limit flag before its TTL.
    case unflagged(model: String)
    /// A request's local limits are reserved and it also needs a shared unit: the transport
    /// claims it from the cluster and reports the outcome by the claim's fence
    /// (protocol/CLUSTER.md §3). The request is answered once the claim has succeeded.
    case claim(Ticket, ClaimRequest)
    /// A shared unit this host holds, or may hold, is given back: the transport deletes its
    /// slot (protocol/CLUSTER.md §3.5).
    case unclaim(Unclaim)
    /// The cluster was lost: no new shared grant until it is restored; with `on_loss =
    /// "revoke"` the leases holding shared capacity are revoked in the effects that follow
    /// (protocol/CLUSTER.md §5).
    case clusterLost(safeDeadline: Instant)
    /// The cluster is back after a loss: shared grants resume.
    case clusterRestored
}

/// What one broker operation decided: its reply to the caller and, in order, every effect it
/// caused. The daemon cannot take the reply without the effects: both come in one value.
public struct Transition<Reply> {
    /// The operation's answer (granted, refused, the lease, whether anything changed).
    public let reply: Reply
    /// What else follows from it, in the order it happened.
    public let effects: [Effect]

    public init(reply: Reply, effects: [Effect]) {
        self.reply = reply
        self.effects = effects
    }
}

extension Transition: Sendable where Reply: Sendable {}
