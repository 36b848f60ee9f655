#if canImport(Glibc)
import Glibc
#endif
import TurnstileProtocol

/// Every result line the suite collected.
struct SuiteResults {
    var runs: [JSONObject] = []
    /// Median wall time of `turnstile run -- true`.
    var runMilliseconds: Double = 0
    /// The in-process core measurement line.
    var core = ""

    mutating func add(_ object: JSONObject) { runs.append(object) }

    /// The median of `field` over the runs matching a workload, target and (pingpong) connections.
    func median(_ workload: String, _ target: Target? = nil, connections: Int? = nil, kind: String? = nil,
                _ field: String) -> Double? {
        let values = runs.filter { run in
            run["workload"]?.stringValue == workload
                && (target == nil || run["target"]?.stringValue == target!.rawValue)
                && (connections == nil || run["connections"]?.numberValue?.int64 == Int64(connections!))
                && (kind == nil || run["kind"]?.stringValue == kind)
        }.compactMap { $0[field]?.numberValue?.double }.sorted()
        return values.isEmpty ? nil : values[values.count / 2]
    }

    /// The largest `field` over the runs of a workload and target (a bound must hold in every run).
    func maximum(_ workload: String, _ target: Target, _ field: String) -> Double? {
        runs.filter { $0["workload"]?.stringValue == workload && $0["target"]?.stringValue == target.rawValue }
            .compactMap { $0[field]?.numberValue?.double }.max()
    }
}

/// One of the README's performance targets, met or not.
struct TargetCheck {
    let name: String
    let value: Double
    let limit: String
    let passed: Bool
}

/// The suite's output: a table, a JSON file, a plot.
struct SuiteReport {
    let results: SuiteResults
    let counts: [Int]

    var checks: [TargetCheck] {
        func value(_ v: Double?) -> Double { v ?? .nan }
        let turnstile = value(results.median("pingpong", .turnstile, connections: 64, "pairs_per_second"))
        let floor = value(results.median("pingpong", .floor, connections: 64, "pairs_per_second"))
        let redis = value(results.median("pingpong", .redis, connections: 64, "pairs_per_second"))
        let cpu = value(results.median("pingpong", .turnstile, connections: 64, "server_cpu_us_per_pair"))
        let p99 = value(results.median("pingpong", .turnstile, connections: 64, "p99_us"))
        let hostileP99 = value(results.median("hostile", .turnstile, "p99_us"))
        let idle = value(results.median("idle", .turnstile, "bytes_per_connection"))
        let jain = value(results.median("contend", .turnstile, "jain"))
        let heldMax = value(results.maximum("contend", .turnstile, "held_max"))
        let disconnect = value(results.median("reclaim", kind: "disconnect", "p99_ms"))
        let sigkill = value(results.median("reclaim", kind: "sigkill_pid", "p99_ms"))
        let deadline = value(results.median("reclaim", kind: "deadline", "p99_ms"))
        return [
            TargetCheck(name: "pairs/s at 64 connections vs the floor", value: turnstile / floor, limit: "≥ 0.5×", passed: turnstile >= 0.5 * floor),
            TargetCheck(name: "pairs/s at 64 connections vs Redis", value: turnstile / redis, limit: "> 1×", passed: turnstile > redis),
            TargetCheck(name: "daemon CPU per pair (µs)", value: cpu, limit: "≤ 10", passed: cpu <= 10),
            TargetCheck(name: "p99 latency at 64 connections (µs)", value: p99, limit: "≤ 700", passed: p99 <= 700),
            TargetCheck(name: "p99 at 64 connections beside hostile clients (µs)", value: hostileP99, limit: "≤ 700",
                        passed: hostileP99 <= 700),
            TargetCheck(name: "memory per idle connection with a lease (bytes)", value: idle, limit: "≤ 4096", passed: idle <= 4096),
            TargetCheck(name: "Jain fairness, 64 clients over limit 8", value: jain, limit: "≥ 0.99", passed: jain >= 0.99),
            TargetCheck(name: "most permits held at once in any round (limit 8)", value: heldMax, limit: "≤ 8", passed: heldMax <= 8),
            TargetCheck(name: "reclaim after disconnect, p99 (ms)", value: disconnect, limit: "< 5", passed: disconnect < 5),
            TargetCheck(name: "reclaim after SIGKILL of a pid-bound holder, p99 (ms)", value: sigkill, limit: "< 5", passed: sigkill < 5),
            TargetCheck(name: "grant after a silent lease's deadline, p99 (ms)", value: deadline, limit: "< 50", passed: deadline < 50),
            TargetCheck(name: "turnstile run -- true, median (ms)", value: results.runMilliseconds, limit: "< 20",
                        passed: results.runMilliseconds < 20),
        ]
    }

    func table() -> String {
        var lines = ["", "pingpong (median of rounds): pairs/s | p50 µs | p99 µs | server CPU µs/pair"]
        for connections in counts {
            var row = "  c=\(connections)".padded(8)
            for target in Target.allCases {
                let rate = results.median("pingpong", target, connections: connections, "pairs_per_second") ?? 0
                let p50 = results.median("pingpong", target, connections: connections, "p50_us") ?? 0
                let p99 = results.median("pingpong", target, connections: connections, "p99_us") ?? 0
                let cpu = results.median("pingpong", target, connections: connections, "server_cpu_us_per_pair") ?? 0
                row += "  \(target.rawValue): \(Int(rate)) | \(Int(p50)) | \(Int(p99)) | \(fixed(cpu, 2))".padded(46)
            }
            lines.append(row)
        }
        // Which side ran out of CPU: a server whose core was not busy while the load generator's
        // was measured the generator, and its pairs/s understates it.
        var busy: [String] = []
        for target in Target.allCases {
            let rate = results.median("pingpong", target, connections: 64, "pairs_per_second") ?? 0
            let server = (results.median("pingpong", target, connections: 64, "server_cpu_us_per_pair") ?? 0) * rate / 1e4
            let client = (results.median("pingpong", target, connections: 64, "client_cpu_us_per_pair") ?? 0) * rate / 1e4
            busy.append("\(target.rawValue) \(Int(server))% / \(Int(client))%"
                        + (client >= 95 && server < 90 ? " (limited by the load generator)" : ""))
        }
        lines.append("  c=64, share of its core busy, server / load generator (turnstile-load): " + busy.joined(separator: ", "))
        lines.append("contend (64 clients, limit 8, 1 ms holds): Jain | wait p99 µs | most held")
        for target in Target.allCases {
            lines.append("  \(target.rawValue): \(fixed(results.median("contend", target, "jain") ?? 0, 4)) | "
                         + "\(Int(results.median("contend", target, "wait_p99_us") ?? 0)) | \(Int(results.median("contend", target, "held_max") ?? 0))")
        }
        let hostile = ["calm_pairs_per_second", "calm_p99_us", "pairs_per_second", "p99_us", "rss_peak_kib"]
            .map { Int(results.median("hostile", .turnstile, $0) ?? 0) }
        lines.append("hostile (64 ping-pong clients beside 10,000 silent connections, 20 unread watchers, a 100,000-request flood):")
        lines.append("  calm \(hostile[0]) pairs/s p99 \(hostile[1]) µs → hostile \(hostile[2]) pairs/s p99 \(hostile[3]) µs, "
                     + "daemon peak RSS \(hostile[4]) KiB")
        lines.append("idle: bytes per connection holding a lease")
        for target in Target.allCases {
            lines.append("  \(target.rawValue): \(Int(results.median("idle", target, "bytes_per_connection") ?? 0))")
        }
        lines.append("core (in process): \(results.core.trimmingWhitespace())")
        lines += ["", "targets:"]
        for check in checks {
            lines.append("  [\(check.passed ? "met" : "MISSED")] \(check.name): \(fixed(check.value, 2)) (target \(check.limit))")
        }
        return lines.joined(separator: "\n")
    }

    func writeJSON(to path: String) throws {
        var w = JSONWriter()
        w.beginObject()
        w.key("runs")
        w.beginArray()
        for run in results.runs { w.value(.object(run)) }
        w.endArray()
        w.key("run_ms"); w.double(results.runMilliseconds)
        w.key("core"); w.string(results.core.trimmingWhitespace())
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
        w.endObject()
        w.newline()
        try write(path, w.bytes)
    }

    /// Throughput and latency against connections, one PNG, drawn by gnuplot.
    func writePlot(directory: String, gnuplot: String?) {
        var data = "# connections " + Target.allCases.map { "\($0.rawValue)_pairs \($0.rawValue)_p50 \($0.rawValue)_p99" }
            .joined(separator: " ") + "\n"
        for connections in counts {
            data += "\(connections)"
            for target in Target.allCases {
                for field in ["pairs_per_second", "p50_us", "p99_us"] {
                    data += " \(Int(results.median("pingpong", target, connections: connections, field) ?? 0))"
                }
            }
            data += "\n"
        }
        try? write(directory + "/pingpong.dat", Array(data.utf8))
        let script = """
            set terminal pngcairo size 1280,520 font "DejaVu Sans,10"
            set output '\(directory)/bench.png'
            set multiplot layout 1,2 title "acquire+release ping-pong, server on one core (median of rounds)"
            set logscale x 2
            set xlabel "connections"
            set grid
            set key top left
            set ylabel "pairs per second"
            plot for [i=0:2] '\(directory)/pingpong.dat' using 1:(column(2+3*i)) with linespoints lw 2 lc i+1 title word("turnstile floor redis", i+1)
            set logscale y 10
            set ylabel "request latency, µs"
            plot for [i=0:2] '\(directory)/pingpong.dat' using 1:(column(3+3*i)) with linespoints dt 2 lw 2 lc i+1 title word("turnstile floor redis", i+1)." p50", \\
                 for [i=0:2] '\(directory)/pingpong.dat' using 1:(column(4+3*i)) with linespoints lw 2 lc i+1 title word("turnstile floor redis", i+1)." p99"
            unset multiplot
            """
        try? write(directory + "/bench.gnuplot", Array(script.utf8))
        if let gnuplot { _ = try? Processes.output([gnuplot, directory + "/bench.gnuplot"]) }
    }

    private func write(_ path: String, _ bytes: [UInt8]) throws {
        guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
}

extension String {
    /// Pads with spaces to `width` characters.
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
