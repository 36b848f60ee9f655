import TurnstileCore

/// A throttle or subscription-limit flag that every host of a fleet applies
/// (protocol/CLUSTER.md §2): a provider's 429 seen on one host holds that tenant's calls on all
/// of them; a model's subscription limit hit on one host makes every host fall back.
public enum SharedControl: Sendable, Equatable {
    /// A provider throttled a tenant for `milliseconds` from now.
    case throttle(tenant: String, provider: String, milliseconds: UInt64)
    /// An operator lifted a tenant's throttle of a provider early.
    case clearThrottle(tenant: String, provider: String)
    /// A model was flagged subscription-limited for `milliseconds` from now.
    case flag(model: String, milliseconds: UInt64)
    /// An operator lifted a model's flag early.
    case unflag(model: String)
}

extension Session {
    /// Queues a control decided here for the transport, if `[cluster]` shares its kind.
    func publish(_ control: SharedControl, kind: ClusterConfig.SharedKind) {
        guard !applyingSharedControl, config.cluster?.shared.contains(kind) == true else { return }
        outbox.sharedControls.append(control)
    }

    /// A control another host published: applied here as if decided here (journaled, told to
    /// watchers, waiters dispatched), but not published back.
    public func applyShared(_ control: SharedControl) {
        applyingSharedControl = true
        defer { applyingSharedControl = false }
        switch control {
        case .throttle(let tenant, let provider, let milliseconds):
            take(broker.throttle(provider: provider, tenant: tenant, retryAfterMilliseconds: milliseconds, now: now))
        case .clearThrottle(let tenant, let provider):
            take(broker.clearThrottle(provider: provider, tenant: tenant, now: now))
        case .flag(let model, let milliseconds):
            take(broker.flagFromCluster(model: model, milliseconds: milliseconds, now: now))
        case .unflag(let model):
            take(broker.unflag(model: model, now: now, wall: wall))
        }
        processEffects()
    }
}
