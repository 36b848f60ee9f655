import Dispatch
import Synchronization
import TurnstileCluster
import TurnstileCore

/// Agreement on the values of shared limits (protocol/CLUSTER.md §2): every daemon of a fleet
/// must count a shared model against the same limit, or the fleet's limit is whatever the most
/// generous host says. The first daemon to join writes each limit its config sets explicitly
/// (`limits/models/<name>`, only if absent); every later one reads it back and compares. A
/// daemon whose config disagrees refuses to start (when etcd can be reached at start), and
/// otherwise does not join: it grants no shared capacity and says why in its log and
/// `status`. A reload may not change a shared limit: the limit changes in etcd first, then in
/// every host's config, then each daemon restarts.
extension ClusterLink {
    /// The limits a config sets explicitly on model pools, by the name it gives them.
    static func sharedLimits(of config: TurnstileConfig) -> [(name: String, limit: Int)] {
        config.models.compactMap { model in model.concurrencyLimit.map { (model.name, $0) } }
            .sorted { $0.name < $1.name }
    }

    /// Why a reload's config cannot be taken while the cluster shares model limits: it changes
    /// one of them; nil if it changes none.
    static func reloadProblem(running: TurnstileConfig, new: TurnstileConfig) -> String? {
        guard running.cluster?.sharesModels == true else { return nil }
        let before = Dictionary(sharedLimits(of: running), uniquingKeysWith: { first, _ in first })
        let after = Dictionary(sharedLimits(of: new), uniquingKeysWith: { first, _ in first })
        for name in Set(before.keys).union(after.keys).sorted() where before[name] != after[name] {
            let was = before[name].map(String.init) ?? "unset", becomes = after[name].map(String.init) ?? "unset"
            return "the limit of shared model \(name) would change from \(was) to \(becomes); a shared limit changes in etcd "
                + "first (limits/models/\(name)), then in every host's config, then each daemon restarts"
        }
        return nil
    }

    /// The agreement transaction: each limit written if absent, else read.
    private func agreementOperations() -> [(name: String, limit: Int, key: String)] {
        Self.sharedLimits(of: server.settings.config).map { ($0.name, $0.limit, layout.limitKey(kind: "models", name: $0.name)) }
    }

    /// What etcd's answer to the agreement transaction says: nil when every limit agrees, else
    /// the disagreement, naming the key and both values.
    private func disagreement(_ answer: EtcdTxnResult, _ limits: [(name: String, limit: Int, key: String)]) -> String? {
        for (entry, result) in zip(limits, answer.results) {
            guard case .txn(let nested) = result, !nested.succeeded else { continue }
            guard case .get(let range)? = nested.results.first, let stored = range.keyValues.first else { continue }
            if stored.valueString != String(entry.limit) {
                return "the fleet's limit of shared model \(entry.name) is \(stored.valueString) (etcd key \(entry.key)), "
                    + "this host's config says \(entry.limit)"
            }
        }
        return nil
    }

    private func sendAgreement(_ limits: [(name: String, limit: Int, key: String)],
                               completion: @escaping EtcdClient.Completion<EtcdTxnResult>) {
        let operations = limits.map { entry in
            EtcdOperation.txn(compares: [.absent(entry.key)], success: [.put(entry.key, String(entry.limit))],
                              failure: [.get(.key(entry.key))])
        }
        client.txn([], success: operations, completion: completion)
    }

    /// At start, before the socket opens: the agreement, waited for at most `seconds`.
    /// - Throws: the disagreement; an unreachable etcd is only logged (checked again on joining).
    func checkAgreementAtStart(seconds: Int = 3) throws {
        let limits = agreementOperations()
        guard !limits.isEmpty else { return }
        let outcome = Mutex<Result<EtcdTxnResult, EtcdError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        sendAgreement(limits) { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + .seconds(seconds)) == .success, let result = outcome.withLock({ $0 }) else {
            logger.warning("cluster: etcd did not answer at start; shared limits are checked on joining")
            return
        }
        switch result {
        case .success(let answer):
            if let problem = disagreement(answer, limits) { throw StartupError(description: "cluster: \(problem)") }
        case .failure(let error):
            logger.warning("cluster: could not check shared limits at start; checked on joining", metadata: ["error": "\(error)"])
        }
    }

    /// On joining, before shared grants begin: the agreement again (etcd may have been out of
    /// reach at start). `then` runs on the loop when the limits agree.
    func checkAgreement(then join: @escaping @Sendable (ClusterLink) -> Void) {
        let limits = agreementOperations()
        guard !limits.isEmpty else { return join(self) }
        sendAgreement(limits) { [inbox] result in
            inbox.post { link in link.agreementAnswered(result, limits, then: join) }
        }
    }

    private func agreementAnswered(_ result: Result<EtcdTxnResult, EtcdError>, _ limits: [(name: String, limit: Int, key: String)],
                                   then join: (ClusterLink) -> Void) {
        switch result {
        case .success(let answer):
            if let problem = disagreement(answer, limits) {
                if server.clusterMetrics.problem != problem {
                    logger.error("cluster: not joining: \(problem)")
                }
                server.clusterMetrics.problem = problem
                nextLeaseCallAt = now.adding(milliseconds: 5_000)
                return
            }
            server.clusterMetrics.problem = nil
            join(self)
        case .failure(let error):
            logger.warning("cluster: could not check shared limits", metadata: ["error": "\(error)"])
            nextLeaseCallAt = now.adding(milliseconds: Self.tickMilliseconds * 5)
        }
    }
}
