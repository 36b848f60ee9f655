#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileCore
import TurnstileProtocol

/// `cluster-suite` (the cluster part of `make bench`): limits shared across hosts through etcd,
/// against the plain etcd semaphore recipe, in one run against one 3-member etcd on loopback
/// (`Tests/cluster/etcd-cluster.sh`).
///
/// Each round measures, in turns (the order alternating between rounds):
/// * the recipe (`etcd-recipe`) at each client count, in every setting asked for (the API,
///   async or completion handlers; one client shared by all, or one per client), the leader's
///   endpoint first: the best setting per count is the peer, the others are reported too;
/// * Turnstile: three release-built daemons (hosts h1, h2, h3: a socket and state directory
///   each, the same etcd, the leader's endpoint first), started for the round and stopped after
///   it, sharing one model whose limit is `--limit-factor` × the most clients in all, so no
///   claim finds it full; `cluster-pingpong` loops acquire(model) → release with one client in
///   all (on h1), then each client count per daemon.
///
/// Nothing is pinned: the three members, the daemons and the load share the machine's cores,
/// as the recipe's members and its client do. Each measurement also records how busy the
/// machine was outside the processes measured (`outside_cpu_percent`: /proc/stat's busy time
/// less the members', the daemons' and the load generator's), so a run disturbed by other work
/// shows. Medians over rounds; the two targets checked; `cluster.json` written. Without etcd
/// (Debian's etcd-server and etcd-client, which `make bench-deps` installs) it says so and
/// measures nothing.
struct ClusterSuite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-suite",
        abstract: "Shared limits through etcd: Turnstile's daemons against the etcd semaphore recipe (make bench).")

    @Option(help: "Interleaved rounds; medians are reported.") var rounds = 3
    @Option(help: "Measured seconds per measurement.") var seconds = 5.0
    @Option(help: "Warm-up seconds before each measurement.") var warmup = 1.0
    @Option(help: "Client counts: the recipe's, and Turnstile's per daemon, comma-separated.") var clients = "1,16,64"
    @Option(name: .customLong("recipe-settings"), help: "Recipe settings to compare, API:connections (connections 1: one client shared; 0: one per client).")
    var recipeSettings = "async:1,async:0,completion:1,completion:0"
    @Option(name: .customLong("limit-factor"), help: "The shared model's limit, as a multiple of the most clients in all.")
    var limitFactor = 4
    @Option(name: .customLong("etcd-script"), help: "etcd-cluster.sh (default: Tests/cluster/etcd-cluster.sh here or beside the build).")
    var etcdScript: String?
    @Option(help: "Where to write cluster.json.") var output = "bench-results"

    static let daemons = ["h1", "h2", "h3"]

    func run() throws {
        let tools = Toolbox()
        _ = mkdir(output, 0o755)
        let missing = ["etcd", "etcdctl", "python3"].filter { !onPath($0) }
        let script = findScript(tools)
        guard let script, missing.isEmpty else {
            let why = script == nil ? "Tests/cluster/etcd-cluster.sh not found (run it from the repository, or give --etcd-script)"
                : "\(missing.joined(separator: ", ")) not found (`make bench-deps` installs them: Debian's etcd-server, etcd-client and python3)"
            print("cluster benchmark skipped: \(why)")
            try ClusterReport.writeSkipped(to: output + "/cluster.json", why: why)
            return
        }
        let counts = clients.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        let settings = try recipeSettings.split(separator: ",").map { item -> RecipeSetting in
            let parts = item.split(separator: ":")
            guard parts.count == 2, ["async", "completion"].contains(parts[0]), let pool = Int(parts[1]), pool == 0 || pool == 1 else {
                throw ValidationError("--recipe-settings: API:connections, API async or completion, connections 1 or 0")
            }
            return RecipeSetting(api: String(parts[0]), connections: pool)
        }
        guard !counts.isEmpty, !settings.isEmpty, rounds > 0 else { throw ValidationError("give client counts, settings and rounds") }
        let work = "/tmp/turnstile-bench-cluster-\(getpid())"
        _ = mkdir(work, 0o700)
        defer { _ = try? Processes.output(["rm", "-rf", work]) }
        let cluster = try EtcdCluster(script: script, directory: work + "/etcd")
        defer { cluster.stop() }
        let limit = max(8, limitFactor * (counts.max() ?? 1) * Self.daemons.count)
        var results = ClusterResults(limit: limit, loadBefore: Self.loadAverage())
        print("cluster: 3 etcd members at \(cluster.endpoints.joined(separator: ",")), pids \(cluster.pids.map(String.init).joined(separator: ","))")
        for round in 1...rounds {
            let leader = try cluster.leader()
            results.leaders.append(leader)
            print("round \(round)/\(rounds) (leader: member \(leader))")
            fflush(nil)
            let recipeFirst = round % 2 == 1
            if recipeFirst { try recipe(tools, cluster, leader, counts, settings, &results) }
            try turnstile(tools, cluster, leader, work, round, limit, counts, &results)
            if !recipeFirst { try recipe(tools, cluster, leader, counts, settings, &results) }
        }
        results.loadAfter = Self.loadAverage()
        let report = ClusterReport(results: results, counts: counts, settings: settings, rounds: rounds, seconds: seconds)
        print(report.table())
        try report.writeJSON(to: output + "/cluster.json")
    }

    /// The recipe at every count, in each setting.
    private func recipe(_ tools: Toolbox, _ cluster: EtcdCluster, _ leader: Int, _ counts: [Int], _ settings: [RecipeSetting],
                        _ results: inout ClusterResults) throws {
        for setting in settings {
            let arguments = [tools.bench, "etcd-recipe", "--endpoints", cluster.endpoints(leaderFirst: leader).joined(separator: ","),
                             "--clients", counts.map(String.init).joined(separator: ","), "--api", setting.api,
                             "--connections", "\(setting.connections)", "--seconds", "\(seconds)", "--warmup", "\(warmup)",
                             "--etcd-pids", cluster.pids.map(String.init).joined(separator: ","), "--json"]
            let rejectedBefore = cluster.rejectedTransactions()
            let (text, outside) = try Self.measured(arguments, known: cluster.pids)
            let rejected = cluster.rejectedTransactions() - rejectedBefore
            let lines = text.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)).objectValue }
            guard lines.count == counts.count else { throw BenchError("etcd-recipe printed \(lines.count) results: \(text)") }
            for var line in lines {
                line.members.append(("setting", .string(setting.name)))
                // The whole call's outside load, shared by its counts.
                line.members.append(("outside_cpu_percent", .number(JSONNumber(text: fixed(outside, 1)))))
                line.members.append(("etcd_rejected_txns", .number(JSONNumber(text: "\(rejected)"))))
                print("  recipe \(setting.name) c=\(line["clients"]?.numberValue?.int64 ?? 0): "
                      + "\(line["pairs_per_second"]?.numberValue?.int64 ?? 0) pairs/s, p50 \(line["p50_us"]?.numberValue?.int64 ?? 0) µs, "
                      + "p99 \(line["p99_us"]?.numberValue?.int64 ?? 0) µs, errors \(line["errors"]?.numberValue?.int64 ?? 0)")
                results.runs.append(line)
            }
            fflush(nil)
        }
    }

    /// Three daemons for the round; one client in all, then each count per daemon.
    private func turnstile(_ tools: Toolbox, _ cluster: EtcdCluster, _ leader: Int, _ work: String, _ round: Int, _ limit: Int,
                           _ counts: [Int], _ results: inout ClusterResults) throws {
        for (step, perDaemon) in ClusterReport.perDaemonLoads(counts).enumerated() {
            // Daemons of their own for each measurement (a fresh prefix, state and host leases),
            // so that what one measurement leaves behind cannot weigh on the next.
            let fleet = try Fleet(tools, directory: work + "/round-\(round)-\(step)", endpoints: cluster.endpoints(leaderFirst: leader),
                                  prefix: "/turnstile/bench-\(getpid())-\(round)-\(step)/", limit: limit)
            defer { fleet.stop() }
            let arguments = [tools.bench, "cluster-pingpong", "--sockets", fleet.sockets.joined(separator: ","), "--per-socket", perDaemon,
                             "--model", Fleet.model, "--seconds", "\(seconds)", "--warmup", "\(warmup)",
                             "--server-pids", fleet.pids.map(String.init).joined(separator: ","),
                             "--etcd-pids", cluster.pids.map(String.init).joined(separator: ","), "--json"]
            let rejectedBefore = cluster.rejectedTransactions()
            let (text, outside) = try Self.measured(arguments, known: cluster.pids + fleet.pids)
            guard let last = text.split(separator: "\n").last, var line = try? JSONParser.parse(String(last)).objectValue else {
                throw BenchError("no result from cluster-pingpong: \(text)")
            }
            let rejected = cluster.rejectedTransactions() - rejectedBefore
            line.members.append(("outside_cpu_percent", .number(JSONNumber(text: fixed(outside, 1)))))
            line.members.append(("etcd_rejected_txns", .number(JSONNumber(text: "\(rejected)"))))
            print("  turnstile \(perDaemon) per daemon: \(line["pairs_per_second"]?.numberValue?.int64 ?? 0) pairs/s, "
                  + "p50 \(line["p50_us"]?.numberValue?.int64 ?? 0) µs, p99 \(line["p99_us"]?.numberValue?.int64 ?? 0) µs, "
                  + "refusals \(line["refusals"]?.numberValue?.int64 ?? 0), claims/txn \(line["claims_per_transaction"]?.numberValue?.text ?? "?"), "
                  + "conflicts \(line["conflicts"]?.numberValue?.int64 ?? 0), etcd refused \(rejected) txns, "
                  + "slots left \(line["slots_left"]?.numberValue?.text ?? "?")")
            fflush(nil)
            results.runs.append(line)
        }
    }

    /// Runs a measurement and returns its output and how busy the machine was meanwhile outside
    /// `known` and the measuring process itself, in percent of one core.
    static func measured(_ arguments: [String], known: [Int32]) throws -> (String, Double) {
        let before = (machineBusySeconds(), known.reduce(0) { $0 + ProcessStats.cpuSeconds($1) }, childrenCPUSeconds(), monotonicNanoseconds())
        let text = try Processes.output(arguments)
        let after = (machineBusySeconds(), known.reduce(0) { $0 + ProcessStats.cpuSeconds($1) }, childrenCPUSeconds(), monotonicNanoseconds())
        let wall = Double(after.3 - before.3) / 1e9
        let outside = (after.0 - before.0) - (after.1 - before.1) - (after.2 - before.2)
        return (text, max(0, outside) / wall * 100)
    }

    /// The machine's busy CPU seconds (all cores), from /proc/stat.
    static func machineBusySeconds() -> Double {
        guard let file = fopen("/proc/stat", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fields = text.split(separator: " ").dropFirst().compactMap { Double(String($0).trimmingWhitespace()) }
        guard fields.count >= 5 else { return 0 }
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait (and
        // guest time, which user already counts).
        let busy = fields.prefix(8).enumerated().filter { $0.offset != 3 && $0.offset != 4 }.reduce(0) { $0 + $1.element }
        return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The CPU seconds of this process's waited-for children.
    static func childrenCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func loadAverage() -> String {
        guard let file = fopen("/proc/loadavg", "r") else { return "" }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), file) != nil else { return "" }
        return String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).trimmingWhitespace()
    }

    private func onPath(_ name: String) -> Bool {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(name)", X_OK) == 0 }
    }

    private func findScript(_ tools: Toolbox) -> String? {
        let candidates = etcdScript.map { [$0] }
            ?? ["Tests/cluster/etcd-cluster.sh", tools.directory + "/../../Tests/cluster/etcd-cluster.sh"]
        return candidates.first { access($0, R_OK) == 0 }
    }
}

/// A way of running the recipe: its API and whether its clients share one etcd client.
struct RecipeSetting {
    let api: String
    /// 1: one EtcdClient (one connection per member) shared by every client; 0: one per client.
    let connections: Int

    var name: String { "\(api)/\(connections == 1 ? "shared" : "per-client")" }
}

/// The 3-member etcd that `etcd-cluster.sh` starts, stopped when the suite ends.
struct EtcdCluster {
    let script: String
    let directory: String
    let endpoints: [String]
    let pids: [Int32]

    init(script: String, directory: String) throws {
        self.script = script
        self.directory = directory
        _ = try Processes.output(["bash", script, "start", directory])
        let text = (try? Processes.output(["cat", directory + "/endpoints"])) ?? ""
        endpoints = text.trimmingWhitespace().split(separator: ",").map(String.init)
        pids = (1...3).compactMap { Int32((try? Processes.output(["cat", directory + "/m\($0)/pid"]))?.trimmingWhitespace() ?? "") }
        guard endpoints.count == 3, pids.count == 3 else {
            _ = try? Processes.output(["bash", script, "stop", directory])
            throw BenchError("etcd-cluster.sh did not start 3 members (see \(directory)/m*/log)")
        }
    }

    /// The leading member's number (1…3).
    func leader() throws -> Int {
        guard let number = Int(try Processes.output(["bash", script, "leader", directory]).trimmingWhitespace()),
              (1...3).contains(number)
        else { throw BenchError("no etcd leader") }
        return number
    }

    /// The endpoints with the leader's first: the fastest order for any client (a follower
    /// forwards every write to the leader).
    func endpoints(leaderFirst leader: Int) -> [String] {
        [endpoints[leader - 1]] + endpoints.enumerated().filter { $0.offset != leader - 1 }.map(\.element)
    }

    func stop() { _ = try? Processes.output(["bash", script, "stop", directory]) }

    /// Transactions the members refused (gRPC status other than OK; etcd's /metrics), summed:
    /// e.g. a branch over `--max-txn-ops`, which etcd answers InvalidArgument.
    func rejectedTransactions() -> Int {
        let script = """
            import re, sys, urllib.request
            total = 0
            for url in sys.argv[1:]:
                try:
                    text = urllib.request.urlopen(url + "/metrics", timeout=2).read().decode()
                except Exception:
                    continue
                for line in text.splitlines():
                    if line.startswith("grpc_server_handled_total{") and 'grpc_method="Txn"' in line and 'grpc_code="OK"' not in line:
                        total += int(float(line.rsplit(" ", 1)[1]))
            print(total)
            """
        return Int(((try? Processes.output(["python3", "-c", script] + endpoints)) ?? "").trimmingWhitespace()) ?? 0
    }
}

/// Three daemons sharing `bench/model` through the cluster.
struct Fleet {
    static let model = "bench/model"
    let sockets: [String]
    let pids: [Int32]

    init(_ tools: Toolbox, directory: String, endpoints: [String], prefix: String, limit: Int) throws {
        _ = mkdir(directory, 0o700)
        var sockets: [String] = []
        var pids: [Int32] = []
        for host in ClusterSuite.daemons {
            let base = directory + "/" + host
            _ = mkdir(base, 0o700)
            _ = mkdir(base + "/pause", 0o700)
            let config = """
                [limits]
                global = \(limit)
                [server]
                max_connections = 2000
                [[models]]
                name = "\(Self.model)"
                concurrency_limit = \(limit)
                [cluster]
                endpoints = [\(endpoints.map { "\"\($0)\"" }.joined(separator: ", "))]
                prefix = "\(prefix)"
                host = "\(host)"
                lease_ttl_ms = 5000
                shared = ["models"]

                """
            guard let file = fopen(base + "/turnstile.toml", "w") else { throw BenchError("cannot write \(base)/turnstile.toml") }
            fputs(config, file)
            fclose(file)
            let socket = base + "/t.sock"
            pids.append(try Processes.start([tools.turnstiled, "--config", base + "/turnstile.toml", "--socket", socket,
                                             "--state-dir", base + "/state", "--pause-dir", base + "/pause", "--log-level", "warning"],
                                            logPath: base + "/turnstiled.log"))
            sockets.append(socket)
        }
        self.sockets = sockets
        self.pids = pids
        do {
            for socket in sockets { try Processes.waitForSocket(socket) }
            // Joined: the host lease registered and the shared limit agreed.
            for socket in sockets {
                var state: String?
                for _ in 0..<600 {
                    state = ClusterCounters.read(socket: socket).state
                    if state == "available" { break }
                    usleep(50_000)
                }
                guard state == "available" else {
                    throw BenchError("the daemon at \(socket) did not join the cluster (state \(state ?? "none"); see its turnstiled.log)")
                }
            }
        } catch {
            stop()
            throw error
        }
    }

    func stop() {
        for pid in pids { Processes.stop(pid) }
    }
}
