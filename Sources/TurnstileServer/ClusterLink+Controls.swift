import TurnstileCluster
import TurnstileCore
import TurnstileSession

/// Shared throttles and subscription-limit flags (protocol/CLUSTER.md §2), when `[cluster]`
/// shares `throttles` or `subscription_limits`. A throttle or flag decided here is written to
/// `throttles/<tenant>/<provider>` or `flags/<model>` with its end, on a lease of its own whose
/// ttl is its length (so it vanishes with it, whoever wrote it); lifted early, its key is
/// deleted. Every poll reads them back: a key that is new or ends later is applied here
/// (`Session.applyShared`), one that vanished before its end was lifted by its host.
extension ClusterLink {
    /// The prefixes the poll reads besides the slots.
    var sharedControlPrefixes: [String] {
        var prefixes: [String] = []
        if config.shared.contains(.throttles) { prefixes.append(layout.throttlesPrefix) }
        if config.shared.contains(.subscriptionLimits) { prefixes.append(layout.flagsPrefix) }
        return prefixes
    }

    /// Publishes the controls decided in this turn.
    func send(controls: [SharedControl]) {
        guard !stopped else { return }
        for control in controls {
            switch control {
            case .throttle(let tenant, let provider, let milliseconds):
                write(layout.throttleKey(tenant: tenant, provider: provider), lasting: milliseconds)
            case .flag(let model, let milliseconds):
                write(layout.flagKey(model: model), lasting: milliseconds)
            case .clearThrottle(let tenant, let provider):
                remove(layout.throttleKey(tenant: tenant, provider: provider))
            case .unflag(let model):
                remove(layout.flagKey(model: model))
            }
        }
    }

    /// Writes a control's key on a lease of its own lasting (at least) as long as it.
    private func write(_ key: String, lasting milliseconds: UInt64) {
        let until = server.wall.unixMilliseconds.addingReportingOverflow(Int64(clamping: milliseconds))
        guard !until.overflow else { return }
        controlsSeen[key] = until.partialValue
        controlWrites.began(key)
        let seconds = Int64(clamping: max(milliseconds / 1000 + 1, 2))
        let value = SlotLayout.controlValue(untilUnixMilliseconds: until.partialValue)
        let client = self.client
        client.grantLease(ttlSeconds: seconds) { [inbox] granted in
            guard case .success(let lease) = granted else {
                inbox.post { $0.controlWritten(key, granted.map { _ in () }) }
                return
            }
            client.put(key, value, lease: lease.id) { put in
                inbox.post { $0.controlWritten(key, put.map { _ in () }) }
            }
        }
    }

    private func remove(_ key: String) {
        controlsSeen[key] = nil
        controlWrites.began(key)
        client.deleteRange(.key(key)) { [inbox] result in
            inbox.post { $0.controlWritten(key, result.map { _ in () }) }
        }
    }

    private func controlWritten(_ key: String, _ result: Result<Void, EtcdError>) {
        if case .failure(let error) = result {
            logger.warning("cluster: could not share a throttle or flag", metadata: ["key": "\(key)", "error": "\(error)"])
        }
        // Polls sent from now on see the change (or its failure): they are news again.
        controlWrites.acknowledged(key, poll: pollSerial)
    }

    /// What a poll (sent as poll number `serial`) read of the shared throttles and flags.
    func controlsPolled(_ entries: [EtcdKeyValue], serial: Int) {
        guard !sharedControlPrefixes.isEmpty else { return }
        let wall = server.wall.unixMilliseconds
        var current: [String: Int64] = [:]
        for entry in entries {
            guard let until = SlotLayout.controlEnd(entry.value) else { continue }
            current[entry.key] = until
        }
        for key in Set(current.keys).union(controlsSeen.keys).sorted() {
            // This host changed the key since (or just before) this poll was sent.
            if controlWrites.hides(key, from: serial) { continue }
            let before = controlsSeen[key], after = current[key]
            if let after, after > wall, after > (before ?? .min) {
                apply(key, milliseconds: UInt64(after - wall))
            } else if after == nil, let before, before > wall {
                apply(key, milliseconds: nil)
            }
            controlsSeen[key] = after
        }
    }

    /// Applies a throttle or flag read from the cluster (`milliseconds` nil: lifted).
    private func apply(_ key: String, milliseconds: UInt64?) {
        if let (tenant, provider) = layout.control(key: key) {
            session.applyShared(milliseconds.map { .throttle(tenant: tenant, provider: provider, milliseconds: $0) }
                                ?? .clearThrottle(tenant: tenant, provider: provider))
        } else if let model = layout.flaggedModel(key: key) {
            session.applyShared(milliseconds.map { .flag(model: model, milliseconds: $0) } ?? .unflag(model: model))
        }
    }
}
