#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// `hostile`: ping-pong latency for well-behaved clients, first calm, then while hostile local
/// clients press on the daemon: thousands of connections that never send, `watch`ers that
/// never read, and a `flood` process pipelining requests without reading (reconnecting each
/// time it is cut off). Reports both latencies and the daemon's memory and descriptors.
struct Hostile: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Latency of others under hostile clients (Turnstile only).")

    @Option(help: "The daemon's socket.") var socket: String
    @Option(name: .customLong("server-pid"), help: "The daemon's pid.") var serverPID: Int32
    @Option(help: "Well-behaved ping-pong connections.") var connections = 64
    @Option(help: "Measured seconds, calm and hostile each.") var seconds = 5.0
    @Option(help: "Connections that never send.") var silent = 10_000
    @Option(help: "Watchers that never read.") var watchers = 20
    @Option(help: "Requests the flood pipelines per connection.") var pipelined = 100_000
    @Flag(help: "Print one JSON line.") var json = false

    func run() throws {
        var calm = try PingPongRun(socket: socket, target: .turnstile, connections: connections)
            .measure(seconds: seconds, warmup: 1, serverPID: serverPID)
        let calmResident = ProcessStats.residentBytes(serverPID)
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<silent {
            guard let fd = connectUnix(socket) else { throw BenchError("connect failed after \(held.count) silent connections") }
            held.append(fd)
        }
        for _ in 0..<watchers {
            guard let fd = connectUnix(socket), writeAll(fd, Array(#"{"op":"watch"}"#.utf8) + [0x0A]) else {
                throw BenchError("a watcher could not connect")
            }
            held.append(fd)
        }
        let log = "/tmp/turnstile-bench-flood-\(getpid()).log"
        let flood = try Processes.start([Toolbox().bench, "flood", "--socket", socket, "--requests", "\(pipelined)"], logPath: log)
        var hostile = try PingPongRun(socket: socket, target: .turnstile, connections: connections)
            .measure(seconds: seconds, warmup: 1, serverPID: serverPID)
        let descriptors = ProcessStats.descriptorCount(serverPID)
        let resident = ProcessStats.residentBytes(serverPID)
        let peak = ProcessStats.peakResidentBytes(serverPID)
        Processes.stop(flood)
        let floods = (try? Processes.output(["cat", log]))?.split(separator: "\n").filter { $0.hasPrefix("cut off") }.count ?? 0
        unlink(log)
        let c = calm.latencies.percentiles([50, 99])
        let h = hostile.latencies.percentiles([50, 99])
        if json {
            print(#"{"workload":"hostile","target":"turnstile","connections":\#(connections),"silent":\#(silent),"watchers":\#(watchers),"pipelined":\#(pipelined),"calm_pairs_per_second":\#(Int(calm.rate)),"calm_p50_us":\#(c[0]),"calm_p99_us":\#(c[1]),"pairs_per_second":\#(Int(hostile.rate)),"p50_us":\#(h[0]),"p99_us":\#(h[1]),"floods_cut_off":\#(floods),"server_fds":\#(descriptors),"rss_calm_kib":\#(calmResident / 1024),"rss_kib":\#(resident / 1024),"rss_peak_kib":\#(peak / 1024)}"#)
        } else {
            print("hostile c=\(connections): calm \(Int(calm.rate)) pairs/s p50 \(c[0]) µs p99 \(c[1]) µs; with \(silent) silent, "
                  + "\(watchers) unread watchers and a \(pipelined)-request flood (cut off \(floods) times): "
                  + "\(Int(hostile.rate)) pairs/s p50 \(h[0]) µs p99 \(h[1]) µs; daemon \(descriptors) fds, RSS \(calmResident / 1024) → "
                  + "\(resident / 1024) KiB (peak \(peak / 1024) KiB)")
        }
    }
}

/// `flood`: pipelines requests on one connection without ever reading; when the daemon cuts it
/// off, says so and starts again on a new connection. Runs until killed.
struct Flood: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pipeline requests without reading, forever (for hostile).")

    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "Requests per connection.") var requests = 100_000

    func run() throws {
        let linesPerChunk = 1000
        let chunk = Array(String(repeating: #"{"op":"status"}"# + "\n", count: linesPerChunk).utf8)
        while true {
            guard let fd = connectUnix(socket) else { throw BenchError("cannot connect to \(socket)") }
            var sent = 0
            while sent < requests, writeAll(fd, chunk) { sent += linesPerChunk }
            if sent >= requests {
                print("all \(sent) requests sent without being cut off")
                fflush(nil)
                pause()
            }
            print("cut off after \(sent) requests")
            fflush(nil)
            close(fd)
        }
    }
}
