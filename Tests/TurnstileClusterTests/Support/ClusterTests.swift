import Testing
import TurnstileCluster

/// Every test that runs a cluster, one at a time: each starts 3 etcd members of its own, and the
/// failure tests time calls against elections, which a second cluster on the same 2 cores would
/// slow down.
@Suite("etcd cluster", .serialized, .enabled(if: EtcdCluster.available, EtcdCluster.missing), .timeLimit(.minutes(2)))
struct ClusterTests {}

/// The semaphore recipe's claim: every key absent → put them all on the lease; otherwise read
/// who holds them, in the same round trip.
func claim(_ keys: [String], for lease: EtcdLeaseID, value: String = "holder", on client: EtcdClient,
           timeout: Duration? = nil) async throws(EtcdError) -> EtcdTxnResult {
    try await client.txn(keys.map(EtcdCompare.absent), success: keys.map { .put($0, value, lease: lease) },
                         failure: keys.map { .get(.key($0)) }, timeout: timeout)
}

/// What the daemon will do with a claim: send it; when its outcome is unknown, read the keys back
/// (held by our lease: it committed); when it certainly failed or did not commit, send it again,
/// until `seconds` pass. Returns how many attempts it took.
func claimResolving(_ keys: [String], for lease: EtcdLeaseID, on client: EtcdClient, within seconds: Double) async throws -> Int {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    var attempts = 0
    while true {
        attempts += 1
        do {
            let result = try await claim(keys, for: lease, on: client)
            // Not succeeded, but every key on our lease: an earlier attempt committed.
            if result.succeeded || result.results.allSatisfy({ $0.heldLease == lease }) { return attempts }
            throw ClusterError(message: "the keys are held by someone else: \(result.results)")
        } catch let error as EtcdError {
            guard ContinuousClock.now < deadline else { throw error }
            if error.outcome == .unknown, let held = try? await client.range(.key(keys[0])),
               held.keyValues.first?.lease == lease {
                return attempts
            }
        }
    }
}

extension EtcdOperationResult {
    /// The lease of the key a `.get` found.
    var heldLease: EtcdLeaseID? {
        guard case .get(let range) = self else { return nil }
        return range.keyValues.first?.lease
    }
}
