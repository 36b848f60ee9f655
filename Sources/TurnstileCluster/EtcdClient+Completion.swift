/// The calls for a caller that is not async, such as the daemon's libuv loop: each returns at
/// once and later calls `completion` exactly once, on the client's event loop thread (never on
/// the caller's, so a completion never runs inside the call that started it). A completion must
/// not block that thread: it hands the result over (the daemon queues it and wakes its loop with
/// `uv_async_send`). After `close`, a call completes at once, on the caller's thread, with
/// `.closed`.
extension EtcdClient {
    /// What a call reports, once, on the client's loop thread.
    public typealias Completion<Value: Sendable> = @Sendable (Result<Value, EtcdError>) -> Void

    public func grantLease(ttlSeconds: Int64, timeout: Duration? = nil, completion: @escaping Completion<EtcdLeaseGrant>) {
        submit(completion) { () async throws(EtcdError) in try await self.grantLease(ttlSeconds: ttlSeconds, timeout: timeout) }
    }

    public func keepAlive(_ lease: EtcdLeaseID, timeout: Duration? = nil, completion: @escaping Completion<EtcdKeepAlive>) {
        submit(completion) { () async throws(EtcdError) in try await self.keepAlive(lease, timeout: timeout) }
    }

    public func revokeLease(_ lease: EtcdLeaseID, timeout: Duration? = nil, completion: @escaping Completion<Void>) {
        submit(completion) { () async throws(EtcdError) in try await self.revokeLease(lease, timeout: timeout) }
    }

    public func leaseTimeToLive(_ lease: EtcdLeaseID, timeout: Duration? = nil, completion: @escaping Completion<EtcdLeaseTimeToLive>) {
        submit(completion) { () async throws(EtcdError) in try await self.leaseTimeToLive(lease, timeout: timeout) }
    }

    public func put(_ key: String, _ value: [UInt8], lease: EtcdLeaseID? = nil, timeout: Duration? = nil,
                    completion: @escaping Completion<Int64>) {
        submit(completion) { () async throws(EtcdError) in try await self.put(key, value, lease: lease, timeout: timeout) }
    }

    public func range(_ keys: EtcdKeys, limit: Int64 = 0, timeout: Duration? = nil, completion: @escaping Completion<EtcdRangeResult>) {
        submit(completion) { () async throws(EtcdError) in try await self.range(keys, limit: limit, timeout: timeout) }
    }

    public func deleteRange(_ keys: EtcdKeys, timeout: Duration? = nil, completion: @escaping Completion<EtcdDeleteResult>) {
        submit(completion) { () async throws(EtcdError) in try await self.deleteRange(keys, timeout: timeout) }
    }

    public func txn(_ compares: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation] = [],
                    timeout: Duration? = nil, completion: @escaping Completion<EtcdTxnResult>) {
        submit(completion) { () async throws(EtcdError) in
            try await self.txn(compares, success: success, failure: failure, timeout: timeout)
        }
    }

    /// `close()` for a caller that is not async: `completion` runs once the loop thread has
    /// stopped, so on a thread of Swift's concurrency pool.
    public func close(completion: @escaping @Sendable () -> Void) {
        Task {
            await close()
            completion()
        }
    }

    /// Runs `work` in a task and delivers its result on the loop. The call counts as under way
    /// until its completion has run, so `close` never stops the loop before it.
    private func submit<Value: Sendable>(
        _ completion: @escaping Completion<Value>, _ work: @escaping @Sendable () async throws(EtcdError) -> Value
    ) {
        guard enter() else {
            completion(.failure(EtcdError.clientClosed))
            return
        }
        let loop = self.loop
        Task {
            let result: Result<Value, EtcdError>
            do throws(EtcdError) {
                result = .success(try await work())
            } catch {
                result = .failure(error)
            }
            loop.execute {
                completion(result)
                self.leave()
            }
        }
    }
}
