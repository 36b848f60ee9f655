#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileProtocol

/// `soak` (what `make soak` runs): a daemon of its own under idle, contend and telemetry load
/// for minutes: N connections holding leases and heartbeating every third of their ttl, 64 more
/// contending for 8 permits, and one client recording a completion for a new model every
/// millisecond; the daemon's RSS and descriptor count sampled every 10 s. Verdict: neither
/// grows once the load is in place (the last third of the samples against the first third),
/// no holder lost its lease, and no record was refused.
struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Minutes of idle + contend load; RSS and fds must not grow.")

    @Option(help: "Minutes of load.") var minutes = 10.0
    @Option(help: "Idle connections holding leases.") var connections = 5_000
    @Option(name: .customLong("sample-seconds"), help: "Seconds between samples.") var sampleSeconds = 10.0

    func run() throws {
        let tools = Toolbox()
        let work = "/tmp/turnstile-soak-\(getpid())"
        _ = mkdir(work, 0o700)
        defer { _ = try? Processes.output(["rm", "-rf", work]) }
        let socket = work + "/t.sock"
        let config = work + "/turnstile.toml"
        let file = fopen(config, "w")
        fputs("[limits]\nglobal = \(connections + 8)\n[server]\nmax_connections = \(connections + 1000)\n", file)
        fclose(file)
        let daemon = try Processes.start(["taskset", "-c", "0", tools.turnstiled, "--config", config, "--socket", socket,
                                          "--state-dir", work + "/state", "--log-level", "warning"], logPath: work + "/turnstiled.log")
        defer { Processes.stop(daemon) }
        try Processes.waitForSocket(socket)
        let seconds = Int(minutes * 60)
        let idle = try Processes.start(["taskset", "-c", "1", tools.bench, "idle", "--socket", socket, "--server-pid", "\(daemon)",
                                        "--connections", "\(connections)", "--ttl-ms", "30000", "--seconds", "\(seconds + 30)"],
                                       logPath: work + "/idle.log")
        defer { Processes.stop(idle) }
        try waitForLeases(socket, connections)
        let contend = try Processes.start(["taskset", "-c", "1", tools.bench, "contend", "--socket", socket, "--connections", "64",
                                           "--limit", "8", "--seconds", "\(seconds)"], logPath: work + "/contend.log")
        let recorder = try Processes.start(["taskset", "-c", "1", tools.bench, "record-models", "--socket", socket,
                                            "--seconds", "\(seconds)"], logPath: work + "/record.log")
        print("soak: \(connections) idle connections with leases, 64 contending for 8 permits, a new model recorded every ms, "
              + "\(fixed(minutes, 1)) minutes")
        var samples: [(resident: Int, descriptors: Int)] = []
        let end = monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000
        while monotonicNanoseconds() < end {
            usleep(UInt32(sampleSeconds * 1e6))
            let sample = (ProcessStats.residentBytes(daemon), ProcessStats.descriptorCount(daemon))
            samples.append(sample)
            print("  t=\(samples.count * Int(sampleSeconds)) s: RSS \(sample.0 / 1024) KiB, \(sample.1) fds")
            fflush(nil)
        }
        Processes.wait(contend)
        let recorded = Processes.wait(recorder)
        let held = Processes.wait(idle)
        for log in ["contend", "record", "idle"] { print(try Processes.output(["cat", work + "/\(log).log"]).trimmingWhitespace()) }
        print(try Processes.output(["du", "-sh", work + "/state"]).trimmingWhitespace())
        try verdict(samples)
        if recorded != 0 || held != 0 { throw BenchError("a record was refused or a holder lost its lease") }
    }

    /// Waits until the idle clients hold their leases.
    private func waitForLeases(_ socket: String, _ count: Int) throws {
        for _ in 0..<6000 {
            if let fd = connectUnix(socket) {
                defer { close(fd) }
                if writeAll(fd, Array(#"{"op":"status"}"#.utf8) + [0x0A]), let line = readAnswer(fd),
                   let inUse = (try? JSONParser.parse(line))?.objectValue?["global"]?.objectValue?["in_use"]?.numberValue?.int64,
                   inUse >= Int64(count) {
                    return
                }
            }
            usleep(50_000)
        }
        throw BenchError("the idle clients never held \(count) leases")
    }

    private func readAnswer(_ fd: Int32) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { return nil }
            bytes += chunk[0..<count]
            if let newline = bytes.firstIndex(of: 0x0A) { return Array(bytes[..<newline]) }
        }
    }

    /// No growth: the last third's peak RSS within 5% (+1 MiB) of the first third's peak, and
    /// the descriptor count no higher than the first third's highest.
    private func verdict(_ samples: [(resident: Int, descriptors: Int)]) throws {
        guard samples.count >= 3 else { throw BenchError("too few samples for a verdict (\(samples.count))") }
        let third = samples.count / 3
        let early = samples.prefix(third), late = samples.suffix(third)
        let earlyRSS = early.map(\.resident).max()!, lateRSS = late.map(\.resident).max()!
        let earlyFDs = early.map(\.descriptors).max()!, lateFDs = late.map(\.descriptors).max()!
        let rssHeld = Double(lateRSS) <= Double(earlyRSS) * 1.05 + 1_048_576
        let fdsHeld = lateFDs <= earlyFDs
        print("soak verdict: RSS \(earlyRSS / 1024) → \(lateRSS / 1024) KiB (\(rssHeld ? "no growth" : "GREW")), "
              + "fds \(earlyFDs) → \(lateFDs) (\(fdsHeld ? "no growth" : "GREW"))")
        if !rssHeld || !fdsHeld { throw ExitCode(1) }
    }
}
