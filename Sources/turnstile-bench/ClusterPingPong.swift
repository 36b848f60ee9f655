#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileProtocol

/// `cluster-pingpong`: N connections to each of several daemons that share a model through
/// etcd, each looping acquire(model) → release on its own daemon, one request outstanding.
/// The acquire does not wait (`wait_ms` 0): with the model's limit well above the clients, a
/// refusal means a claim found the model full, and is counted (and the acquire sent again).
/// A pair is the acquire (granted once the daemon's claim transaction took a slot in etcd) and
/// the release (answered at once; the slot's deletion goes to etcd in the background): its
/// latency is from the acquire's send to the release's answer, the figure the etcd recipe's
/// pair latency (claim txn + delete) is compared with. With `--server-pids` and `--etcd-pids`,
/// the daemons' and the etcd members' CPU time per pair; each daemon's `status.cluster`
/// counters before and after give the claim transactions, conflicts and round trips of the
/// measured window.
struct ClusterPingPong: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-pingpong",
        abstract: "Cluster-limited acquire+release pairs per second and latency over daemons sharing a model through etcd.")

    @Option(help: "The daemons' sockets, comma-separated.") var sockets: String
    @Option(name: .customLong("per-socket"), help: "Connections to each daemon (0 for a daemon leaves it idle).")
    var perSocket = "1"
    @Option(help: "The shared model every acquire names.") var model = "bench/model"
    @Option(help: "Measured seconds.") var seconds = 5.0
    @Option(help: "Warm-up seconds (not measured).") var warmup = 1.0
    @Option(name: .customLong("server-pids"), help: "The daemons' pids, comma-separated, to report their CPU time per pair.")
    var serverPIDs: String?
    @Option(name: .customLong("etcd-pids"), help: "The etcd members' pids, comma-separated, to report their CPU time per pair.")
    var etcdPIDs: String?
    @Flag(help: "Print one JSON line instead of text.") var json = false

    func run() throws {
        let paths = sockets.split(separator: ",").map(String.init)
        // One count for every daemon, or one per daemon (e.g. "1,0,0": one client in all).
        var counts = perSocket.split(separator: ",").compactMap { Int($0) }
        if counts.count == 1 { counts = Array(repeating: counts[0], count: paths.count) }
        guard !paths.isEmpty, counts.count == paths.count, counts.allSatisfy({ $0 >= 0 }), counts.contains(where: { $0 > 0 }) else {
            throw ValidationError("give --sockets and --per-socket (one count, or one per socket)")
        }
        let servers = (serverPIDs ?? "").split(separator: ",").compactMap { Int32($0) }
        let members = (etcdPIDs ?? "").split(separator: ",").compactMap { Int32($0) }
        // The daemons' counters at the measured window's start and end (a status request each).
        var before: [ClusterCounters] = []
        var after: [ClusterCounters] = []
        var result = try ClusterPingPongRun(sockets: paths, counts: counts, model: model)
            .measure(seconds: seconds, warmup: warmup, serverPIDs: servers, etcdPIDs: members,
                     atStart: { before = paths.map { ClusterCounters.read(socket: $0) } },
                     atEnd: { after = paths.map { ClusterCounters.read(socket: $0) } })
        let window = zip(before, after).map { $1.minus($0) }.reduce(ClusterCounters(), +)
        // What etcd holds once the clients are gone: every slot should be deleted within a
        // few polls; one that stays is a unit the fleet lost.
        usleep(1_500_000)
        let left = ClusterCounters.slotsHeld(socket: paths[0])
        let pair = result.pairLatencies.percentiles([50, 90, 99])
        let acquire = result.acquireLatencies.percentiles([50, 99])
        let total = counts.reduce(0, +)
        let perPair = { (value: Double?) -> String in value.map { fixed($0 / Double(max(result.pairs, 1)) * 1e6, 1) } ?? "null" }
        let transactionsPerPair = Double(window.transactions) / Double(max(result.pairs, 1))
        if json {
            print(#"{"workload":"cluster-pingpong","daemons":\#(paths.count),"per_daemon":"\#(counts.map(String.init).joined(separator: ","))","clients":\#(total),"pairs_per_second":\#(Int(result.rate)),"p50_us":\#(pair[0]),"p90_us":\#(pair[1]),"p99_us":\#(pair[2]),"acquire_p50_us":\#(acquire[0]),"acquire_p99_us":\#(acquire[1]),"refusals":\#(result.refusals),"daemon_cpu_us_per_pair":\#(perPair(result.serverCPU)),"etcd_cpu_us_per_pair":\#(perPair(result.etcdCPU)),"client_cpu_us_per_pair":\#(perPair(result.clientCPU)),"claim_transactions":\#(window.transactions),"claims_won":\#(window.claimsWon),"conflicts":\#(window.conflicts),"claim_failures":\#(window.claimFailures),"claims_per_transaction":\#(fixed(window.transactions == 0 ? 0 : Double(window.claimsWon) / Double(window.transactions), 2)),"claim_round_trip_avg_us":\#(window.roundTripAverageMicroseconds.map { "\($0)" } ?? "null"),"daemon_loop_cpu_us_per_pair":\#(perPair(result.serverLoopCPU)),"slots_left":\#(left.map { "\($0)" } ?? "null")}"#)
        } else {
            print("cluster-pingpong \(paths.count) daemons, \(counts.map(String.init).joined(separator: "/")) clients: \(Int(result.rate)) pairs/s, "
                  + "pair latency µs p50 \(pair[0]) p90 \(pair[1]) p99 \(pair[2]) (acquire p50 \(acquire[0]) p99 \(acquire[1]))"
                  + (result.refusals > 0 ? ", \(result.refusals) refusals (first: \(result.firstRefusal ?? "?"))" : "")
                  + (result.serverCPU.map { _ in ", daemons' CPU \(perPair(result.serverCPU)) µs/pair" } ?? "")
                  + (result.etcdCPU.map { _ in ", etcd CPU \(perPair(result.etcdCPU)) µs/pair" } ?? "")
                  + ", client CPU \(perPair(result.clientCPU)) µs/pair; claim txns \(window.transactions) "
                  + "(\(fixed(transactionsPerPair, 3)) per pair), conflicts \(window.conflicts), claim failures \(window.claimFailures)"
                  + (window.roundTripAverageMicroseconds.map { ", claim round trip avg \($0) µs" } ?? "")
                  + (result.serverLoopCPU.map { _ in ", daemons' loop threads \(perPair(result.serverLoopCPU)) µs/pair" } ?? "")
                  + (left.map { "; slots held 1.5 s after the clients left: \($0)" } ?? ""))
        }
        fflush(nil)
    }
}

/// The counters of a daemon's `status.cluster` that a window's figures are derived from.
struct ClusterCounters {
    var transactions: Int64 = 0
    var claimsWon: Int64 = 0
    var conflicts: Int64 = 0
    var claimFailures: Int64 = 0
    /// transactions × average round trip (the status gives the average since the start).
    var roundTripMicroseconds: Double = 0
    var state: String?

    var roundTripAverageMicroseconds: Int? {
        transactions > 0 ? Int(roundTripMicroseconds / Double(transactions)) : nil
    }

    func minus(_ earlier: ClusterCounters) -> ClusterCounters {
        ClusterCounters(transactions: transactions - earlier.transactions, claimsWon: claimsWon - earlier.claimsWon,
                        conflicts: conflicts - earlier.conflicts, claimFailures: claimFailures - earlier.claimFailures,
                        roundTripMicroseconds: roundTripMicroseconds - earlier.roundTripMicroseconds, state: state)
    }

    static func + (a: ClusterCounters, b: ClusterCounters) -> ClusterCounters {
        ClusterCounters(transactions: a.transactions + b.transactions, claimsWon: a.claimsWon + b.claimsWon,
                        conflicts: a.conflicts + b.conflicts, claimFailures: a.claimFailures + b.claimFailures,
                        roundTripMicroseconds: a.roundTripMicroseconds + b.roundTripMicroseconds, state: a.state ?? b.state)
    }

    /// The daemon's `status.cluster` (zeros if it has none or does not answer).
    static func read(socket: String) -> ClusterCounters {
        guard let cluster = statusCluster(socket: socket) else { return ClusterCounters() }
        func number(_ key: String) -> Int64 { cluster[key]?.numberValue?.int64 ?? 0 }
        let transactions = number("transactions_total")
        return ClusterCounters(transactions: transactions, claimsWon: number("claims_won_total"), conflicts: number("conflicts_total"),
                               claimFailures: number("claim_failures_total"),
                               roundTripMicroseconds: Double(number("round_trip_avg_us")) * Double(transactions),
                               state: cluster["state"]?.stringValue)
    }

    /// The slots of every host as the daemon last polled them (`status.cluster.use`).
    static func slotsHeld(socket: String) -> Int? {
        guard let use = statusCluster(socket: socket)?["use"]?.objectValue else { return nil }
        return use.members.flatMap { $0.value.objectValue?.members ?? [] }.compactMap { $0.value.numberValue?.int64 }
            .reduce(0) { $0 + Int($1) }
    }

    /// One `status` request on a connection of its own; its `cluster` object.
    static func statusCluster(socket: String) -> JSONObject? {
        guard let fd = connectUnix(socket) else { return nil }
        defer { close(fd) }
        guard writeAll(fd, Array(#"{"op":"status"}"#.utf8) + [0x0A]) else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while bytes.firstIndex(of: 0x0A) == nil {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { return nil }
            bytes += chunk[0..<count]
        }
        let line = String(decoding: bytes[..<bytes.firstIndex(of: 0x0A)!], as: UTF8.self)
        return (try? JSONParser.parse(line))?.objectValue?["cluster"]?.objectValue
    }
}

/// One connection looping acquire(model) → release, one request outstanding.
final class ClusterPairClient {
    let fd: Int32
    private var acquiring = true
    private var pairStartedAt: UInt64 = 0
    private var acquireAnsweredAt: UInt64 = 0
    private let input = UnsafeMutablePointer<UInt8>.allocate(capacity: ClusterPairClient.inputCapacity)
    private var used = 0
    private let acquireRequest: [UInt8]
    private var releaseRequest: [UInt8]
    private let releasePrefix: Int

    private static let inputCapacity = 8192
    private static let leaseKey: [UInt8] = Array(#""lease":""#.utf8)
    private static let releaseTail: [UInt8] = Array("\"}\n".utf8)

    init(fd: Int32, model: String) {
        self.fd = fd
        var request = JSONWriter()
        request.beginObject()
        request.key("op"); request.string("acquire")
        request.key("model"); request.string(model)
        request.endObject()
        request.newline()
        acquireRequest = request.bytes
        let prefix = Array(#"{"op":"release","lease":""#.utf8)
        releasePrefix = prefix.count
        releaseRequest = prefix
        releaseRequest.reserveCapacity(prefix.count + 256)
    }

    deinit { input.deallocate() }

    func start() { sendAcquire(at: monotonicNanoseconds()) }

    private func sendAcquire(at now: UInt64) {
        acquiring = true
        pairStartedAt = now
        _ = writeAll(fd, acquireRequest)
    }

    /// Reads what arrived and answers it. `onPair(pair, acquire)` gets a completed pair's
    /// latencies, `onRefusal` a refused acquire's answer (sent again at once).
    func readable(onPair: (UInt64, UInt64) -> Void, onRefusal: (UnsafeBufferPointer<UInt8>) -> Void) {
        let count = recv(fd, input + used, Self.inputCapacity - used, 0)
        guard count > 0 else {
            if count == 0 || (errno != EINTR && errno != EAGAIN) { fatalError("a daemon closed a benchmark connection") }
            return
        }
        used += count
        var start = 0
        while let newline = memchr(input + start, 0x0A, used - start) {
            let end = UnsafeRawPointer(input).distance(to: newline)
            let line = UnsafeBufferPointer(start: input + start, count: end - start)
            let now = monotonicNanoseconds()
            if acquiring {
                if let token = Self.token(line) {
                    acquireAnsweredAt = now
                    releaseRequest.removeSubrange(releasePrefix...)
                    releaseRequest.append(contentsOf: token)
                    releaseRequest.append(contentsOf: Self.releaseTail)
                    acquiring = false
                    _ = writeAll(fd, releaseRequest)
                } else {
                    onRefusal(line)
                    sendAcquire(at: now)
                }
            } else {
                onPair(now - pairStartedAt, acquireAnsweredAt - pairStartedAt)
                sendAcquire(at: now)
            }
            start = end + 1
        }
        used -= start
        precondition(used < Self.inputCapacity, "an answer longer than \(Self.inputCapacity) bytes")
        if used > 0 && start > 0 { memmove(input, input + start, used) }
    }

    private static func token(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
        guard line.count >= leaseKey.count,
              let found = (0...(line.count - leaseKey.count)).first(where: { memcmp(line.baseAddress! + $0, leaseKey, leaseKey.count) == 0 })
        else { return nil }
        let start = found + leaseKey.count
        guard let end = line[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return UnsafeBufferPointer(rebasing: line[start..<end])
    }
}

/// The load itself: every connection of every daemon on one thread, with `poll`.
struct ClusterPingPongRun {
    struct Result {
        var pairs = 0
        var refusals = 0
        var firstRefusal: String?
        var seconds = 0.0
        var pairLatencies = LatencyRecorder()
        var acquireLatencies = LatencyRecorder()
        var serverCPU: Double?
        /// The daemons' loop threads alone (the rest is the etcd client's threads).
        var serverLoopCPU: Double?
        var etcdCPU: Double?
        var clientCPU: Double?

        var rate: Double { Double(pairs) / seconds }
    }

    private var clients: [ClusterPairClient]
    private var poller: SocketPoller

    init(sockets: [String], counts: [Int], model: String) throws {
        clients = try zip(sockets, counts).flatMap { socket, count in
            try (0..<count).map { _ -> ClusterPairClient in
                guard let fd = connectUnix(socket) else { throw BenchError("cannot connect to \(socket)") }
                return ClusterPairClient(fd: fd, model: model)
            }
        }
        poller = SocketPoller(clients.map(\.fd))
        for client in clients { client.start() }
    }

    consuming func measure(seconds: Double, warmup: Double, serverPIDs: [Int32], etcdPIDs: [Int32],
                           atStart: () -> Void = {}, atEnd: () -> Void = {}) -> Result {
        var result = Result()
        let warmupEnd = monotonicNanoseconds() + UInt64(warmup * 1e9)
        let end = warmupEnd + UInt64(seconds * 1e9)
        var measuring = false
        var start = warmupEnd
        func cpu(_ pids: [Int32]) -> Double? { pids.isEmpty ? nil : pids.reduce(0) { $0 + ProcessStats.cpuSeconds($1) } }
        func loopCPU(_ pids: [Int32]) -> Double? { pids.isEmpty ? nil : pids.reduce(0) { $0 + threadCPUSeconds($1, $1) } }
        var cpuStart: (Double?, Double?, Double, Double?) = (nil, nil, 0, nil)
        while true {
            let now = monotonicNanoseconds()
            if !measuring && now >= warmupEnd {
                atStart()
                measuring = true
                start = monotonicNanoseconds()
                cpuStart = (cpu(serverPIDs), cpu(etcdPIDs), ProcessStats.ownCPUSeconds(), loopCPU(serverPIDs))
            }
            if now >= end { break }
            poller.forEachReady(timeoutMilliseconds: 100) { index in
                clients[index].readable(onPair: { pair, acquire in
                    guard measuring else { return }
                    result.pairs += 1
                    result.pairLatencies.record(pair)
                    result.acquireLatencies.record(acquire)
                }, onRefusal: { line in
                    guard measuring else { return }
                    result.refusals += 1
                    if result.firstRefusal == nil { result.firstRefusal = String(decoding: line, as: UTF8.self) }
                })
            }
        }
        result.seconds = Double(monotonicNanoseconds() - start) / 1e9
        result.serverCPU = cpuStart.0.flatMap { before in cpu(serverPIDs).map { $0 - before } }
        result.serverLoopCPU = cpuStart.3.flatMap { before in loopCPU(serverPIDs).map { $0 - before } }
        result.etcdCPU = cpuStart.1.flatMap { before in cpu(etcdPIDs).map { $0 - before } }
        result.clientCPU = ProcessStats.ownCPUSeconds() - cpuStart.2
        atEnd()
        for client in clients { close(client.fd) }
        return result
    }
}

/// One thread's user+system CPU seconds (/proc/<pid>/task/<tid>/stat).
func threadCPUSeconds(_ pid: Int32, _ tid: Int32) -> Double {
    guard let file = fopen("/proc/\(pid)/task/\(tid)/stat", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 4096)
    guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
    let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
