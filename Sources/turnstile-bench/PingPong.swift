#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// `pingpong`: N connections each looping acquire → release as fast as the server answers.
/// Reports pairs per second and per-request latency percentiles; with `--server-pid`, the
/// server's CPU time per pair (from /proc). `turnstile-load` (C) runs the same loop and prints
/// the same line with half the user-space instructions per request; the suite uses it, since
/// against the floor this client's core is the first to fill.
struct PingPong: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acquire+release pairs per second and request latency over N connections.")

    @Option(help: "The server's socket.") var socket: String
    @Option(help: "Protocol: turnstile (NDJSON), floor (the thin C reference, NDJSON) or redis (RESP).")
    var target: Target = .turnstile
    @Option(help: "Concurrent connections.") var connections = 64
    @Option(help: "Measured seconds.") var seconds = 5.0
    @Option(help: "Warm-up seconds (not measured).") var warmup = 1.0
    @Option(name: .customLong("server-pid"), help: "The server's pid, to report its CPU time per pair.") var serverPID: Int32?
    @Option(help: "Stop after this many measured pairs (for instruction counts under callgrind).") var pairs: Int?
    @Flag(help: "Print one JSON line instead of text.") var json = false

    func run() throws {
        var result = try PingPongRun(socket: socket, target: target, connections: connections)
            .measure(seconds: seconds, warmup: warmup, serverPID: serverPID, pairsMax: pairs)
        let p = result.latencies.percentiles([50, 90, 99, 99.9])
        if json {
            print(#"{"workload":"pingpong","target":"\#(target.rawValue)","client":"turnstile-bench","connections":\#(connections),"pairs_per_second":\#(Int(result.rate)),"p50_us":\#(p[0]),"p90_us":\#(p[1]),"p99_us":\#(p[2]),"p999_us":\#(p[3]),"server_cpu_us_per_pair":\#(result.cpuPerPair.map { fixed($0, 2) } ?? "null"),"client_cpu_us_per_pair":\#(fixed(result.clientCPUPerPair, 2))}"#)
        } else {
            print("pingpong \(target.rawValue) c=\(connections): \(Int(result.rate)) pairs/s, latency µs p50 \(p[0]) p90 \(p[1]) p99 \(p[2]) p99.9 \(p[3])"
                  + (result.cpuPerPair.map { ", server CPU \(fixed($0, 2)) µs/pair" } ?? "")
                  + ", client CPU \(fixed(result.clientCPUPerPair, 2)) µs/pair")
        }
    }
}

/// The ping-pong load itself, shared by `pingpong`, `hostile` and `soak`.
struct PingPongRun {
    /// What one measurement saw.
    struct Result {
        var pairs: Int
        var seconds: Double
        var latencies: LatencyRecorder
        /// The server's CPU seconds over the measurement, if its pid was given.
        var serverCPU: Double?
        /// This client's CPU seconds over the measurement.
        var clientCPU: Double

        var rate: Double { Double(pairs) / seconds }
        var cpuPerPair: Double? { serverCPU.map { $0 / Double(max(pairs, 1)) * 1e6 } }
        var clientCPUPerPair: Double { clientCPU / Double(max(pairs, 1)) * 1e6 }
    }

    private var clients: [PairClient]
    private var poller: SocketPoller

    /// Connects the clients and sends each one's first acquire.
    init(socket: String, target: Target, connections: Int) throws {
        let scripts = target == .redis ? try RedisSemaphore.load(socket: socket) : nil
        clients = try (0..<connections).map { _ -> PairClient in
            guard let fd = connectUnix(socket) else { throw BenchError("cannot connect to \(socket)") }
            return PairClient(fd: fd, target: target, scripts: scripts)
        }
        poller = SocketPoller(clients.map(\.fd))
        for client in clients { client.start() }
    }

    /// Runs the load for `warmup` seconds unmeasured, then `seconds` measured (or until
    /// `pairsMax` pairs), then closes the connections.
    consuming func measure(seconds: Double, warmup: Double, serverPID: Int32?, pairsMax: Int? = nil) -> Result {
        var recorder = LatencyRecorder()
        let warmupEnd = monotonicNanoseconds() + UInt64(warmup * 1e9)
        let end = warmupEnd + UInt64(seconds * 1e9)
        var measuring = false
        var completed = 0
        var cpuStart: Double = 0
        var ownStart: Double = 0
        var start = warmupEnd
        while true {
            let now = monotonicNanoseconds()
            if !measuring && now >= warmupEnd {
                measuring = true
                start = now
                cpuStart = serverPID.map(ProcessStats.cpuSeconds) ?? 0
                ownStart = ProcessStats.ownCPUSeconds()
            }
            if now >= end || (measuring && pairsMax.map { completed >= $0 } == true) { break }
            poller.forEachReady(timeoutMilliseconds: 100) { index in
                clients[index].readable { latency, completedPair in
                    guard measuring else { return }
                    recorder.record(latency)
                    if completedPair { completed += 1 }
                }
            }
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        let cpu = serverPID.map { ProcessStats.cpuSeconds($0) - cpuStart }
        let own = ProcessStats.ownCPUSeconds() - ownStart
        for client in clients { close(client.fd) }
        return Result(pairs: completed, seconds: elapsed, latencies: recorder, serverCPU: cpu, clientCPU: own)
    }
}

/// The three servers the benchmarks compare.
enum Target: String, ExpressibleByArgument, CaseIterable {
    case turnstile, floor, redis
}
