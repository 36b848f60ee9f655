#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileProtocol

/// `suite` (what `make bench` runs): every workload against Turnstile, the C floor and Redis
/// (`hostile` against Turnstile alone), servers pinned to core 0 and load to core 1, in
/// interleaved rounds; medians, the README's performance targets checked, a table, a JSON file and a PNG plot.
/// The ping-pong load comes from `turnstile-load` (C), the cheapest client per request we have:
/// the Swift client as it was spent more CPU per request than the floor, so the floor's figure
/// measured the client.
struct Suite: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The whole benchmark suite (make bench).")

    @Option(help: "Interleaved rounds; medians are reported.") var rounds = 3
    @Option(help: "Seconds per pingpong/contend run.") var seconds = 3.0
    @Option(help: "Connection counts for the pingpong sweep, comma-separated.") var sweep = "1,4,16,64,256"
    @Option(name: .customLong("idle-connections"), help: "Connections for the idle workload.") var idleConnections = 10_000
    @Option(help: "Where to write results.json and bench.png.") var output = "bench-results"

    func run() throws {
        let tools = Toolbox()
        let work = "/tmp/turnstile-bench-\(getpid())"
        _ = mkdir(work, 0o700)
        var results = SuiteResults()
        let counts = sweep.split(separator: ",").compactMap { Int($0) }
        for round in 1...rounds {
            print("round \(round)/\(rounds)")
            try pingpong(tools, work, counts, &results)
            try contend(tools, work, &results)
            try hostile(tools, work, &results)
        }
        try idle(tools, work, &results)
        try reclaim(tools, work, &results)
        try runCommand(tools, work, &results)
        results.core = try Processes.output([tools.bench, "core"]).split(separator: "\n").last.map(String.init) ?? ""
        _ = mkdir(output, 0o755)
        let report = SuiteReport(results: results, counts: counts)
        print(report.table())
        try report.writeJSON(to: output + "/results.json")
        report.writePlot(directory: output, gnuplot: tools.gnuplot)
        _ = try? Processes.output(["rm", "-rf", work])
    }

    /// Runs `PROGRAM ARGS --json` (turnstile-bench or turnstile-load) on core 1 and parses its line.
    private func measure(_ program: String, _ arguments: [String]) throws -> JSONObject {
        let text = try Processes.output(["taskset", "-c", "1", program] + arguments + ["--json"])
        guard let line = text.split(separator: "\n").last, let object = try? JSONParser.parse(String(line)).objectValue else {
            throw BenchError("no result from \(arguments.joined(separator: " ")): \(text)")
        }
        return object
    }

    private func pingpong(_ tools: Toolbox, _ work: String, _ counts: [Int], _ results: inout SuiteResults) throws {
        let servers = try Servers(tools, work, turnstileConfig: "[limits]\nglobal = 100000\n[server]\nmax_connections = 20000\n",
                                  floorLimit: 1_000_000)
        defer { servers.stop() }
        for connections in counts {
            for target in Target.allCases {
                let (socket, pid) = servers.endpoint(target)
                var arguments = ["--socket", socket, "--target", target.rawValue, "--connections", "\(connections)",
                                 "--seconds", "\(seconds)", "--server-pid", "\(pid)"]
                if target == .redis {
                    // Loaded (and the keys reset) before each run, as `ping-pong` does.
                    let scripts = try RedisSemaphore.load(socket: socket)
                    arguments += ["--acquire-sha", scripts.acquireSHA, "--release-sha", scripts.releaseSHA]
                }
                results.add(try measure(tools.load, arguments))
            }
        }
    }

    private func contend(_ tools: Toolbox, _ work: String, _ results: inout SuiteResults) throws {
        let servers = try Servers(tools, work, turnstileConfig: "[limits]\nglobal = 8\n", floorLimit: 8)
        defer { servers.stop() }
        for target in Target.allCases {
            results.add(try measure(tools.bench, ["contend", "--socket", servers.endpoint(target).socket, "--target", target.rawValue,
                                           "--connections", "64", "--limit", "8", "--seconds", "\(seconds)"]))
        }
    }

    private func hostile(_ tools: Toolbox, _ work: String, _ results: inout SuiteResults) throws {
        let servers = try Servers(tools, work, turnstileConfig: "[limits]\nglobal = 100000\n[server]\nmax_connections = 20000\n",
                                  floorLimit: 1)
        defer { servers.stop() }
        let (socket, pid) = servers.endpoint(.turnstile)
        results.add(try measure(tools.bench, ["hostile", "--socket", socket, "--server-pid", "\(pid)", "--seconds", "\(seconds)",
                                       "--silent", "\(idleConnections)"]))
    }

    private func idle(_ tools: Toolbox, _ work: String, _ results: inout SuiteResults) throws {
        for target in Target.allCases {
            let servers = try Servers(tools, work, turnstileConfig: "[limits]\nglobal = 100000\n[server]\nmax_connections = 20000\n",
                                      floorLimit: 1_000_000)
            defer { servers.stop() }
            let (socket, pid) = servers.endpoint(target)
            results.add(try measure(tools.bench, ["idle", "--socket", socket, "--target", target.rawValue, "--server-pid", "\(pid)",
                                           "--connections", "\(idleConnections)", "--seconds", "3"]))
        }
    }

    private func reclaim(_ tools: Toolbox, _ work: String, _ results: inout SuiteResults) throws {
        let servers = try Servers(tools, work, turnstileConfig: "[limits]\nglobal = 1\n", floorLimit: 1)
        defer { servers.stop() }
        let text = try Processes.output(["taskset", "-c", "1", tools.bench, "reclaim", "--socket", servers.turnstileSocket,
                                         "--rounds", "50", "--json"])
        for line in text.split(separator: "\n") {
            if let object = try? JSONParser.parse(String(line)).objectValue { results.add(object) }
        }
    }

    /// `turnstile run -- true` against a warm daemon: median of 50 wall-clock runs.
    private func runCommand(_ tools: Toolbox, _ work: String, _ results: inout SuiteResults) throws {
        let servers = try Servers(tools, work, turnstileConfig: "", floorLimit: 1)
        defer { servers.stop() }
        var samples: [Double] = []
        for index in 0..<55 {
            let start = monotonicNanoseconds()
            _ = try Processes.output([tools.turnstile, "run", "--socket", servers.turnstileSocket, "--", "true"])
            if index >= 5 { samples.append(Double(monotonicNanoseconds() - start) / 1e6) }
        }
        samples.sort()
        results.runMilliseconds = samples[samples.count / 2]
    }
}

/// Where the suite's programs are.
struct Toolbox {
    let directory: String
    var bench: String { directory + "/turnstile-bench" }
    var turnstiled: String { directory + "/turnstiled" }
    var turnstile: String { directory + "/turnstile" }
    var floor: String { directory + "/turnstile-floor" }
    var load: String { directory + "/turnstile-load" }
    let gnuplot: String?

    init() {
        var path = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &path, path.count - 1)
        let executable = String(decoding: path[0..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        directory = String(executable[..<(executable.lastIndex(of: "/") ?? executable.endIndex)])
        gnuplot = access("/usr/bin/gnuplot", X_OK) == 0 ? "/usr/bin/gnuplot" : nil
    }
}

/// The three servers, each on core 0.
struct Servers {
    let turnstileSocket: String
    let floorSocket: String
    let redisSocket: String
    private let pids: [Target: pid_t]

    init(_ tools: Toolbox, _ work: String, turnstileConfig: String, floorLimit: Int) throws {
        let state = work + "/state-\(monotonicNanoseconds())"
        turnstileSocket = work + "/t.sock"
        floorSocket = work + "/floor.sock"
        redisSocket = work + "/redis.sock"
        let config = work + "/turnstile.toml"
        let file = fopen(config, "w")
        fputs(turnstileConfig, file)
        fclose(file)
        pids = [
            .turnstile: try Processes.start(["taskset", "-c", "0", tools.turnstiled, "--config", config, "--socket", turnstileSocket,
                                             "--state-dir", state, "--log-level", "warning"], logPath: work + "/turnstiled.log"),
            .floor: try Processes.start(["taskset", "-c", "0", tools.floor, floorSocket, "\(floorLimit)"], logPath: work + "/floor.log"),
            .redis: try Processes.start(["taskset", "-c", "0", "redis-server", "--unixsocket", redisSocket, "--unixsocketperm", "700",
                                         "--port", "0", "--save", "", "--appendonly", "no", "--maxclients", "20000"],
                                        logPath: work + "/redis.log"),
        ]
        for socket in [turnstileSocket, floorSocket, redisSocket] { try Processes.waitForSocket(socket) }
    }

    /// A target's socket and pid (taskset execs the server, so its pid is the server's).
    func endpoint(_ target: Target) -> (socket: String, pid: pid_t) {
        switch target {
        case .turnstile: (turnstileSocket, pids[.turnstile]!)
        case .floor: (floorSocket, pids[.floor]!)
        case .redis: (redisSocket, pids[.redis]!)
        }
    }

    func stop() {
        for pid in pids.values { Processes.stop(pid) }
    }
}
