import GRPCCore

/// The calls, as async functions. Each takes an optional `timeout` (the configured one when nil)
/// and throws only `EtcdError`.
extension EtcdClient {
    /// etcd's `hasleader` metadata: a member without a leader refuses the call at once ("no
    /// leader", certainly not applied, so the call moves to another member) instead of holding it
    /// until its deadline.
    static let metadata: Metadata = ["hasleader": "true"]

    /// Grants a lease of `ttlSeconds` (etcd raises it to its minimum, 1.5 election timeouts).
    public func grantLease(ttlSeconds: Int64, timeout: Duration? = nil) async throws(EtcdError) -> EtcdLeaseGrant {
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttlSeconds
        return try await perform(mutates: true, timeout: timeout) { [request] member, options in
            let sentAt = EtcdClock.now()
            let response = try await member.lease.leaseGrant(request, metadata: Self.metadata, options: options)
            guard response.error.isEmpty else {
                throw EtcdError(outcome: .notApplied, reason: .rejected, endpoint: member.url, message: response.error)
            }
            return EtcdLeaseGrant(id: EtcdLeaseID(rawValue: response.id), ttlSeconds: response.ttl, sentAt: sentAt)
        }
    }

    /// Renews `lease` once: one request on etcd's keep-alive stream, one answer, stream closed.
    /// The result's `safeUntil` is the renewal's send time plus the TTL etcd restarted. A renewal
    /// may be repeated safely, so it goes to another member after any failure; a lease that
    /// expired or was revoked fails with `.leaseNotFound`.
    public func keepAlive(_ lease: EtcdLeaseID, timeout: Duration? = nil) async throws(EtcdError) -> EtcdKeepAlive {
        var message = Etcdserverpb_LeaseKeepAliveRequest()
        message.id = lease.rawValue
        return try await perform(mutates: false, timeout: timeout) { [message] member, options in
            let sentAt = EtcdClock.now()
            let request = StreamingClientRequest(of: Etcdserverpb_LeaseKeepAliveRequest.self, metadata: Self.metadata) {
                try await $0.write(message)
            }
            let ttl = try await member.lease.leaseKeepAlive(request: request, options: options) { response in
                for try await answer in response.messages { return answer.ttl }
                throw RPCError(code: .unavailable, message: "the keep-alive stream closed without an answer")
            }
            guard ttl > 0 else {
                throw EtcdError(outcome: .notApplied, reason: .leaseNotFound, endpoint: member.url,
                                message: "lease \(lease) has expired or was revoked")
            }
            return EtcdKeepAlive(id: lease, ttlSeconds: ttl, sentAt: sentAt)
        }
    }

    /// Revokes `lease`: etcd deletes every key attached to it.
    public func revokeLease(_ lease: EtcdLeaseID, timeout: Duration? = nil) async throws(EtcdError) {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = lease.rawValue
        try await perform(mutates: true, timeout: timeout) { [request] member, options in
            _ = try await member.lease.leaseRevoke(request, metadata: Self.metadata, options: options)
        }
    }

    /// A lease's remaining TTL and the keys attached to it.
    public func leaseTimeToLive(_ lease: EtcdLeaseID, timeout: Duration? = nil) async throws(EtcdError) -> EtcdLeaseTimeToLive {
        var request = Etcdserverpb_LeaseTimeToLiveRequest()
        request.id = lease.rawValue
        request.keys = true
        return try await perform(mutates: false, timeout: timeout) { [request] member, options in
            let response = try await member.lease.leaseTimeToLive(request, metadata: Self.metadata, options: options)
            return EtcdLeaseTimeToLive(id: lease, ttlSeconds: response.ttl, grantedTTLSeconds: response.grantedTtl,
                                       keys: response.keys.map { String(decoding: $0, as: UTF8.self) })
        }
    }

    /// Writes `value` at `key`, attached to `lease` when given; returns the new revision.
    public func put(_ key: String, _ value: [UInt8], lease: EtcdLeaseID? = nil, timeout: Duration? = nil) async throws(EtcdError) -> Int64 {
        let request = EtcdOperation.putRequest(key: key, value: value, lease: lease)
        return try await perform(mutates: true, timeout: timeout) { [request] member, options in
            try await member.kv.put(request, metadata: Self.metadata, options: options).header.revision
        }
    }

    /// Reads one key or a prefix, at most `limit` keys when `limit` > 0. The read is
    /// linearizable: it sees every write committed before it began (but not a request that is
    /// still on its way, say held by a frozen member, which may commit later).
    public func range(_ keys: EtcdKeys, limit: Int64 = 0, timeout: Duration? = nil) async throws(EtcdError) -> EtcdRangeResult {
        var request = keys.rangeRequest
        request.limit = limit
        return try await perform(mutates: false, timeout: timeout) { [request] member, options in
            EtcdRangeResult(try await member.kv.range(request, metadata: Self.metadata, options: options))
        }
    }

    /// Deletes one key or a prefix (a claim's release).
    public func deleteRange(_ keys: EtcdKeys, timeout: Duration? = nil) async throws(EtcdError) -> EtcdDeleteResult {
        let request = keys.deleteRequest
        return try await perform(mutates: true, timeout: timeout) { [request] member, options in
            EtcdDeleteResult(try await member.kv.deleteRange(request, metadata: Self.metadata, options: options))
        }
    }

    /// One transaction: if every compare holds, the `success` operations run, else the `failure`
    /// ones, atomically. A transaction that only reads is repeated on another member after any
    /// failure; one that writes, only after a failure that certainly had no effect. etcd refuses
    /// (`.rejected`) a branch of more than 128 operations (its `--max-txn-ops`) or one that
    /// writes a key twice.
    public func txn(
        _ compares: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation] = [], timeout: Duration? = nil
    ) async throws(EtcdError) -> EtcdTxnResult {
        let request = Etcdserverpb_TxnRequest(compares: compares, success: success, failure: failure)
        let mutates = success.contains(where: \.mutates) || failure.contains(where: \.mutates)
        return try await perform(mutates: mutates, timeout: timeout) { [request] member, options in
            EtcdTxnResult(try await member.kv.txn(request, metadata: Self.metadata, options: options))
        }
    }
}
