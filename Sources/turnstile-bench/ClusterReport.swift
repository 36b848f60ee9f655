#if canImport(Glibc)
import Glibc
#endif
import TurnstileCore
import TurnstileProtocol

/// What `cluster-suite` collected: every measurement's line, and the run's circumstances.
struct ClusterResults {
    var runs: [JSONObject] = []
    /// The shared model's limit.
    let limit: Int
    /// The leading member at each round's start.
    var leaders: [Int] = []
    /// /proc/loadavg before and after the run.
    let loadBefore: String
    var loadAfter = ""

    init(limit: Int, loadBefore: String) {
        self.limit = limit
        self.loadBefore = loadBefore
    }

    /// The median of `field` over the recipe's runs in one setting at one client count.
    func recipe(_ setting: String, clients: Int, _ field: String) -> Double? {
        median(runs.filter {
            $0["workload"]?.stringValue == "etcd-recipe" && $0["setting"]?.stringValue == setting
                && $0["clients"]?.numberValue?.int64 == Int64(clients)
        }, field)
    }

    /// The median of `field` over Turnstile's runs with `perDaemon` clients per daemon ("1,0,0": one in all).
    func turnstile(_ perDaemon: String, _ field: String) -> Double? {
        median(runs.filter { $0["workload"]?.stringValue == "cluster-pingpong" && $0["per_daemon"]?.stringValue == perDaemon }, field)
    }

    private func median(_ selected: [JSONObject], _ field: String) -> Double? {
        let values = selected.compactMap { $0[field]?.numberValue?.double }.sorted()
        return values.isEmpty ? nil : values[values.count / 2]
    }
}

/// The cluster part's table, targets and JSON file.
struct ClusterReport {
    let results: ClusterResults
    let counts: [Int]
    let settings: [RecipeSetting]
    let rounds: Int
    let seconds: Double

    /// One client in all, on h1 (the other two daemons up and idle).
    static let oneInAll = "1,0,0"

    /// The recipe's fastest setting at a client count (by median pairs/s).
    func bestSetting(_ clients: Int) -> String? {
        settings.map(\.name).max { (results.recipe($0, clients: clients, "pairs_per_second") ?? 0)
            < (results.recipe($1, clients: clients, "pairs_per_second") ?? 0) }
    }

    func recipe(_ clients: Int, _ field: String) -> Double? {
        bestSetting(clients).flatMap { results.recipe($0, clients: clients, field) }
    }

    /// `cluster-pingpong --per-socket` for each of Turnstile's rows: one client in all, then
    /// each count on every daemon.
    static func perDaemonLoads(_ counts: [Int]) -> [String] {
        [oneInAll] + counts.map { count in ClusterSuite.daemons.map { _ in "\(count)" }.joined(separator: ",") }
    }

    /// Turnstile's rows.
    var loads: [(label: String, perDaemon: String, clients: Int)] {
        zip(["1 client in all (h1)"] + counts.map { "\($0) per daemon (\($0 * ClusterSuite.daemons.count) in all)" },
            Self.perDaemonLoads(counts)).map { label, perDaemon in
            (label, perDaemon, perDaemon.split(separator: ",").compactMap { Int($0) }.reduce(0, +))
        }
    }

    var checks: [TargetCheck] {
        var checks: [TargetCheck] = []
        if counts.contains(1) {
            let ratio = (results.turnstile(Self.oneInAll, "p50_us") ?? .nan) / (recipe(1, "p50_us") ?? .nan)
            checks.append(TargetCheck(name: "pair latency p50, Turnstile with 1 client in all / the recipe with 1 client",
                                      value: ratio, limit: "≤ 1.5×", passed: ratio <= 1.5))
        }
        if let most = counts.max() {
            let ratio = (results.turnstile(Self.perDaemonLoads([most])[1], "pairs_per_second") ?? .nan) / (recipe(most, "pairs_per_second") ?? .nan)
            checks.append(TargetCheck(name: "pairs/s, Turnstile with \(most) clients per daemon (3 daemons, summed) / the recipe with \(most) clients",
                                      value: ratio, limit: "≥ 3×", passed: ratio >= 3))
        }
        return checks
    }

    func table() -> String {
        func int(_ value: Double?) -> String { value.map { "\(Int($0))" } ?? "-" }
        func one(_ value: Double?) -> String { value.map { fixed($0, 1) } ?? "-" }
        var lines = ["", "cluster: 3 etcd members on loopback, medians of \(rounds) rounds of \(fixed(seconds, 1)) s; model limit \(results.limit); "
                     + "leader by round: \(results.leaders.map(String.init).joined(separator: ", "))",
                     "  etcd recipe (txn claim + delete), per setting: pairs/s | pair p50 µs | p99 µs | etcd CPU µs/pair | client CPU µs/pair | errors"]
        for clients in counts {
            lines.append("    c=\(clients)")
            for setting in settings.map(\.name) {
                lines.append("      \(setting)".padded(30) + "\(int(results.recipe(setting, clients: clients, "pairs_per_second"))) | "
                             + "\(int(results.recipe(setting, clients: clients, "p50_us"))) | \(int(results.recipe(setting, clients: clients, "p99_us"))) | "
                             + "\(one(results.recipe(setting, clients: clients, "etcd_cpu_us_per_pair"))) | "
                             + "\(one(results.recipe(setting, clients: clients, "client_cpu_us_per_pair"))) | "
                             + "\(int(results.recipe(setting, clients: clients, "errors")))"
                             + (setting == bestSetting(clients) ? "  (fastest)" : ""))
            }
        }
        lines.append("  Turnstile, 3 daemons (acquire(model) → release): pairs/s | pair p50 µs | p99 µs | acquire p50 µs | "
                     + "daemons' CPU µs/pair (loop threads) | etcd CPU µs/pair | load generator CPU µs/pair | claims per txn | conflicts per pair")
        for load in loads {
            func value(_ field: String) -> Double? { results.turnstile(load.perDaemon, field) }
            let conflicts = (value("conflicts") ?? 0) / max(1, (value("pairs_per_second") ?? 0) * seconds)
            lines.append("    \(load.label)".padded(34) + "\(int(value("pairs_per_second"))) | \(int(value("p50_us"))) | \(int(value("p99_us"))) | "
                         + "\(int(value("acquire_p50_us"))) | \(one(value("daemon_cpu_us_per_pair"))) (\(one(value("daemon_loop_cpu_us_per_pair")))) | "
                         + "\(one(value("etcd_cpu_us_per_pair"))) | \(one(value("client_cpu_us_per_pair"))) | "
                         + "\(value("claims_per_transaction").map { fixed($0, 2) } ?? "-") | \(fixed(conflicts, 2))")
        }
        // A run whose acquires were refused (the model full, though its limit is far above the
        // clients), whose units outlived the clients, or whose transactions etcd refused.
        for run in results.runs where run["workload"]?.stringValue == "cluster-pingpong" {
            let refusals = run["refusals"]?.numberValue?.int64 ?? 0
            let left = run["slots_left"]?.numberValue?.int64 ?? 0
            let rejected = run["etcd_rejected_txns"]?.numberValue?.int64 ?? 0
            guard refusals > 0 || left > 0 || rejected > 0 else { continue }
            lines.append("    ! \(run["per_daemon"]?.stringValue ?? "?") per daemon: \(refusals) acquires refused (model full), "
                         + "\(left) slots still held 1.5 s after the clients left, \(rejected) transactions refused by etcd")
        }
        let outside = results.runs.compactMap { $0["outside_cpu_percent"]?.numberValue?.double }
        if let most = outside.max() {
            lines.append("  machine: load average \(results.loadBefore.split(separator: " ").prefix(3).joined(separator: " ")) before, "
                         + "\(results.loadAfter.split(separator: " ").prefix(3).joined(separator: " ")) after; CPU busy outside the measured "
                         + "processes: median \(fixed(outside.sorted()[outside.count / 2], 0))%, most \(fixed(most, 0))% of a core"
                         + (most > 20 ? " (other work shared the 2 cores: figures are lower than on a quiet machine)" : ""))
        }
        lines += ["", "cluster targets:"]
        for check in checks {
            lines.append("  [\(check.passed ? "met" : "MISSED")] \(check.name): \(fixed(check.value, 2)) (target \(check.limit))")
        }
        return lines.joined(separator: "\n")
    }

    func writeJSON(to path: String) throws {
        var w = JSONWriter()
        w.beginObject()
        w.key("model_limit"); w.int(results.limit)
        w.key("rounds"); w.int(rounds)
        w.key("seconds"); w.double(seconds)
        w.key("leaders")
        w.beginArray()
        for leader in results.leaders { w.int(leader) }
        w.endArray()
        w.key("loadavg_before"); w.string(results.loadBefore)
        w.key("loadavg_after"); w.string(results.loadAfter)
        w.key("recipe")
        w.beginArray()
        for clients in counts {
            w.beginObject()
            w.key("clients"); w.int(clients)
            w.key("fastest_setting"); w.string(bestSetting(clients))
            for field in ["pairs_per_second", "p50_us", "p99_us", "etcd_cpu_us_per_pair", "client_cpu_us_per_pair"] {
                w.dynamicKey(field)
                if let value = recipe(clients, field) { w.double(value) } else { w.null() }
            }
            w.endObject()
        }
        w.endArray()
        w.key("turnstile")
        w.beginArray()
        for load in loads {
            w.beginObject()
            w.key("per_daemon"); w.string(load.perDaemon)
            w.key("clients"); w.int(load.clients)
            for field in ["pairs_per_second", "p50_us", "p99_us", "acquire_p50_us", "acquire_p99_us", "daemon_cpu_us_per_pair",
                          "daemon_loop_cpu_us_per_pair", "etcd_cpu_us_per_pair", "client_cpu_us_per_pair", "claims_per_transaction",
                          "conflicts", "refusals", "claim_round_trip_avg_us", "slots_left", "etcd_rejected_txns"] {
                w.dynamicKey(field)
                if let value = results.turnstile(load.perDaemon, field) { w.double(value) } else { w.null() }
            }
            w.endObject()
        }
        w.endArray()
        w.key("targets")
        w.beginArray()
        for check in checks {
            w.beginObject()
            w.key("name"); w.string(check.name)
            w.key("value"); w.double(check.value)
            w.key("target"); w.string(check.limit)
            w.key("met"); w.bool(check.passed)
            w.endObject()
        }
        w.endArray()
        w.key("runs")
        w.beginArray()
        for run in results.runs { w.value(.object(run)) }
        w.endArray()
        w.endObject()
        w.newline()
        try Self.write(path, w.bytes)
    }

    /// A cluster.json that says why nothing was measured.
    static func writeSkipped(to path: String, why: String) throws {
        var w = JSONWriter()
        w.beginObject()
        w.key("skipped"); w.string(why)
        w.endObject()
        w.newline()
        try write(path, w.bytes)
    }

    private static func write(_ path: String, _ bytes: [UInt8]) throws {
        guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
}
