import Dispatch
import Synchronization
import TurnstileCluster
import TurnstileCore

/// Agreement on the values of shared limits (protocol/CLUSTER.md §2): every daemon of a fleet
/// must count a shared model, project cap or pool against the same limit, or the fleet's limit
/// is whatever the most generous host says. The first daemon to join writes each limit its
/// config sets explicitly (`limits/<kind>/<name>`, only if absent); every later one reads it
/// back and compares. A
/// daemon whose config disagrees refuses to start (when etcd can be reached at start), and
/// otherwise does not join: it grants no shared capacity and says why in its log and
/// `status`. A reload may not change a shared limit: the limit changes in etcd first, then in
/// every host's config, then each daemon restarts.
extension ClusterLink {
    /// One limit a config sets explicitly on something shared: its kind as keys spell it
    /// (`models`, `projects`, `mentions`, `pools`), its name as the config gives it, its value.
    struct AgreedLimit: Hashable {
        let kind: String
        let name: String
        let limit: Int

        /// How messages name it: `model claude/opus`, `project web`, `mention cap of project web`, `pool gpu`.
        var label: String {
            switch kind {
            case "models": "shared model \(name)"
            case "projects": "shared cap of project \(name)"
            case "mentions": "shared mention cap of project \(name)"
            default: "shared pool \(name)"
            }
        }
    }

    /// The limits a config sets explicitly on the kinds it shares: model pools' concurrency
    /// limits, projects' `max` and `max_mention`, `[[pools]]` limits.
    static func sharedLimits(of config: TurnstileConfig) -> [AgreedLimit] {
        guard let cluster = config.cluster else { return [] }
        var limits: [AgreedLimit] = []
        if cluster.shared.contains(.models) {
            limits += config.models.compactMap { model in model.concurrencyLimit.map { AgreedLimit(kind: "models", name: model.name, limit: $0) } }
        }
        if cluster.shared.contains(.projects) {
            for project in config.projects {
                if let max = project.max { limits.append(AgreedLimit(kind: "projects", name: project.name, limit: max)) }
                if let max = project.maxMention { limits.append(AgreedLimit(kind: "mentions", name: project.name, limit: max)) }
            }
        }
        if cluster.shared.contains(.pools) {
            limits += config.pools.map { AgreedLimit(kind: "pools", name: $0.name, limit: $0.limit) }
        }
        return limits.sorted { ($0.kind, $0.name) < ($1.kind, $1.name) }
    }

    /// Why a reload's config cannot be taken while the cluster shares limits: it changes one
    /// of them (its value, or whether it is set); nil if it changes none.
    static func reloadProblem(running: TurnstileConfig, new: TurnstileConfig) -> String? {
        guard running.cluster != nil else { return nil }
        func byKey(_ config: TurnstileConfig) -> [String: AgreedLimit] {
            Dictionary(sharedLimits(of: config).map { ($0.kind + "/" + $0.name, $0) }, uniquingKeysWith: { first, _ in first })
        }
        let before = byKey(running), after = byKey(new)
        for key in Set(before.keys).union(after.keys).sorted() where before[key]?.limit != after[key]?.limit {
            let label = (before[key] ?? after[key])!.label
            let was = before[key].map { String($0.limit) } ?? "unset", becomes = after[key].map { String($0.limit) } ?? "unset"
            return "the limit of \(label) would change from \(was) to \(becomes); a shared limit changes in etcd "
                + "first (limits/\(key)), then in every host's config, then each daemon restarts"
        }
        return nil
    }

    /// Whether this host shares a kind whose limits the fleet agrees on.
    private var sharesLimits: Bool {
        !(server.settings.config.cluster?.shared ?? []).isDisjoint(with: [.models, .projects, .pools])
    }

    /// The agreement transaction: each limit written if absent, else read.
    private func agreementOperations() -> [(limit: AgreedLimit, key: String)] {
        Self.sharedLimits(of: server.settings.config).map { ($0, layout.limitKey(kind: $0.kind, name: $0.name)) }
    }

    /// What etcd's answer to the agreement transaction says: nil when every limit agrees, else
    /// the disagreement, naming the key and both values.
    private func disagreement(_ answer: EtcdTxnResult, _ limits: [(limit: AgreedLimit, key: String)]) -> String? {
        for (entry, result) in zip(limits, answer.results.dropFirst()) {
            guard case .txn(let nested) = result, !nested.succeeded else { continue }
            guard case .get(let range)? = nested.results.first, let stored = range.keyValues.first else { continue }
            if stored.valueString != String(entry.limit.limit) {
                return "the fleet's limit of \(entry.limit.label) is \(stored.valueString) (etcd key \(entry.key)), "
                    + "this host's config says \(entry.limit.limit)"
            }
        }
        guard case .get(let range)? = answer.results.first else { return nil }
        let mine = Set(limits.map { $0.key })
        for stored in range.keyValues where !mine.contains(stored.key) {
            guard let (kind, name) = layout.limitName(key: stored.key) else { continue }
            if let value = unsetLimit(kind: kind, name: name), value != stored.valueString {
                let label = AgreedLimit(kind: kind, name: name, limit: 0).label
                return "the fleet's limit of \(label) is \(stored.valueString) (etcd key \(stored.key)), this host's config \(value)"
            }
        }
        return nil
    }

    /// What this host counts for a limit the fleet agreed on and its config does not set, when
    /// it shares that kind: a model's pool its tier's default (when the name is `provider/model`;
    /// a bare name matches pools this host cannot list), a project cap or pool no limit at all
    /// (it would claim no unit of it). Nil when it does not share the kind.
    private func unsetLimit(kind: String, name: String) -> String? {
        let config = server.settings.config
        let shared = config.cluster?.shared ?? []
        switch kind {
        case "models":
            guard shared.contains(.models), let model = ModelKey(parsing: name) else { return nil }
            let limit = ModelTable(providers: config.providers, models: config.models).limit(of: model)
            return "gives it \(limit) (its tier's default, no concurrency_limit)"
        case "projects", "mentions": return shared.contains(.projects) ? "sets none" : nil
        case "pools": return shared.contains(.pools) ? "sets none" : nil
        default: return nil
        }
    }

    /// Sends the agreement: first a read of every agreed limit (the fleet's limits this host's
    /// config does not set are compared too), then each limit written if absent, else read, in
    /// transactions of at most `operationsPerTransaction` operations. The answers come back
    /// merged, in that order, or the first failure.
    private static func sendAgreement(_ limits: [(limit: AgreedLimit, key: String)], reading prefix: String?, client: EtcdClient,
                                      completion: @escaping EtcdClient.Completion<EtcdTxnResult>) {
        let room = Self.operationsPerTransaction - (prefix == nil ? 0 : 1)
        let chunk = Array(limits.prefix(room))
        let operations = (prefix.map { [EtcdOperation.get(.prefix($0))] } ?? []) + chunk.map { entry in
            EtcdOperation.txn(compares: [.absent(entry.key)], success: [.put(entry.key, String(entry.limit.limit))],
                              failure: [.get(.key(entry.key))])
        }
        let rest = Array(limits.dropFirst(chunk.count))
        client.txn([], success: operations) { result in
            guard case .success(let answer) = result, !rest.isEmpty else { return completion(result) }
            sendAgreement(rest, reading: nil, client: client) { later in
                completion(later.map { EtcdTxnResult(succeeded: true, revision: $0.revision, results: answer.results + $0.results) })
            }
        }
    }

    /// At start, before the socket opens: the agreement, waited for at most `seconds`.
    /// - Throws: the disagreement; an unreachable etcd is only logged (checked again on joining).
    func checkAgreementAtStart(seconds: Int = 3) throws {
        let limits = agreementOperations()
        guard sharesLimits else { return }
        let outcome = Mutex<Result<EtcdTxnResult, EtcdError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Self.sendAgreement(limits, reading: layout.limitsPrefix, client: client) { result in
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
        guard sharesLimits else { return join(self) }
        Self.sendAgreement(limits, reading: layout.limitsPrefix, client: client) { [inbox] result in
            inbox.post { link in link.agreementAnswered(result, limits, then: join) }
        }
    }

    private func agreementAnswered(_ result: Result<EtcdTxnResult, EtcdError>, _ limits: [(limit: AgreedLimit, key: String)],
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
