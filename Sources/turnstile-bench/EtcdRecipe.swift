#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Dispatch
import Synchronization
import TurnstileCluster

/// `etcd-recipe`: the plain etcd semaphore recipe, done as fast as TurnstileCluster's client can
/// do it, as the peer a shared limit is measured against. Each of N clients loops: one
/// transaction claims its own slot key on a lease (`create_revision(key) == 0` → put the key with
/// the lease), then one delete releases it. Every client has a slot of its own, so nobody waits:
/// a pair is two etcd round trips (two raft commits), and that is what it measures. Against a
/// running cluster (`Tests/cluster/etcd-cluster.sh start DIR` makes a 3-member one on loopback).
struct EtcdRecipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etcd-recipe",
        abstract: "Claim (txn) + release (delete) pairs per second and latency against etcd, per client count.")

    @Option(help: "The cluster's client URLs, comma-separated (e.g. the endpoints file etcd-cluster.sh writes).")
    var endpoints: String
    @Option(help: "Client counts to measure, comma-separated.") var clients = "1,16,64"
    @Option(help: "How many EtcdClient instances (connections per member) the clients share: 1, or 0 for one per client.")
    var connections = 1
    @Option(help: "Which API the clients use: async, or completion (callbacks on the client's loop, as the daemon will).")
    var api: API = .async
    @Option(help: "Measured seconds per client count.") var seconds = 5.0
    @Option(help: "Warm-up seconds (not measured).") var warmup = 1.0
    @Option(name: .customLong("etcd-pids"), help: "The members' pids, comma-separated, to report their CPU time per pair.")
    var etcdPIDs: String?
    @Flag(help: "Print one JSON line per client count instead of text.") var json = false

    enum API: String, ExpressibleByArgument { case async, completion }

    func run() throws {
        let urls = endpoints.split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
        let counts = clients.split(separator: ",").compactMap { Int($0) }
        let pids = (etcdPIDs ?? "").split(separator: ",").compactMap { Int32($0) }
        guard !urls.isEmpty, !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("give --endpoints and positive --clients")
        }
        for count in counts {
            let pool = try (0..<(connections == 0 ? count : max(connections, 1))).map { _ in try EtcdClient(endpoints: urls) }
            let run = RecipeRun(clients: count, pool: pool, api: api, seconds: seconds, warmup: warmup, etcdPIDs: pids)
            var result = try blocking { try await run.measure() }
            for client in pool { blocking { await client.close() } }
            report(&result, clients: count, pool: pool.count)
        }
    }

    private func report(_ result: inout RecipeRun.Result, clients: Int, pool: Int) {
        let p = result.latencies.percentiles([50, 90, 99])
        let etcdCPU = result.etcdCPUPerPair.map { fixed($0, 1) }
        if json {
            print(#"{"workload":"etcd-recipe","api":"\#(api.rawValue)","clients":\#(clients),"connections":\#(pool),"pairs_per_second":\#(Int(result.rate)),"p50_us":\#(p[0]),"p90_us":\#(p[1]),"p99_us":\#(p[2]),"errors":\#(result.errors),"etcd_cpu_us_per_pair":\#(etcdCPU ?? "null"),"client_cpu_us_per_pair":\#(fixed(result.clientCPUPerPair, 1))}"#)
        } else {
            print("etcd-recipe \(api.rawValue) c=\(clients) connections=\(pool): \(Int(result.rate)) pairs/s, pair latency µs p50 \(p[0]) p90 \(p[1]) p99 \(p[2])"
                  + (result.errors > 0 ? ", \(result.errors) errors (first: \(result.firstError ?? "?"))" : "")
                  + (etcdCPU.map { ", etcd CPU \($0) µs/pair" } ?? "")
                  + ", client CPU \(fixed(result.clientCPUPerPair, 1)) µs/pair")
        }
        fflush(nil)
    }
}

/// One measurement at one client count.
struct RecipeRun: Sendable {
    struct Result {
        var pairs: Int
        var errors: Int
        var firstError: String?
        var seconds: Double
        var latencies: LatencyRecorder
        var etcdCPU: Double?
        var clientCPU: Double

        var rate: Double { Double(pairs) / seconds }
        var etcdCPUPerPair: Double? { etcdCPU.map { $0 / Double(max(pairs, 1)) * 1e6 } }
        var clientCPUPerPair: Double { clientCPU / Double(max(pairs, 1)) * 1e6 }
    }

    /// What one client loop saw in the measured window.
    struct Tally: Sendable {
        var latencies: [UInt64] = []
        var errors = 0
        var firstError: String?

        mutating func failed(_ what: String) {
            errors += 1
            if firstError == nil { firstError = what }
        }
    }

    let clients: Int
    let pool: [EtcdClient]
    let api: EtcdRecipe.API
    let seconds: Double
    let warmup: Double
    let etcdPIDs: [Int32]

    func measure() async throws -> Result {
        let prefix = "bench/etcd-recipe/\(monotonicNanoseconds())/"
        let lease = try await pool[0].grantLease(ttlSeconds: 60).id
        let start = monotonicNanoseconds() + UInt64(warmup * 1e9)
        let end = start + UInt64(seconds * 1e9)
        let cpuStart = (etcdCPU(), ProcessStats.ownCPUSeconds())
        let tallies = await withTaskGroup(of: Tally.self) { group in
            for index in 0..<clients {
                let client = pool[index % pool.count]
                let slot = "\(prefix)\(index)"
                group.addTask {
                    api == .async
                        ? await Self.loop(client, slot: slot, lease: lease, start: start, end: end)
                        : await Self.loopWithCompletions(client, slot: slot, lease: lease, start: start, end: end)
                }
            }
            return await group.reduce(into: [Tally]()) { $0.append($1) }
        }
        let measured = Double(min(monotonicNanoseconds(), end + 1) - start) / 1e9
        let cpuEnd = (etcdCPU(), ProcessStats.ownCPUSeconds())
        try? await pool[0].revokeLease(lease)
        var recorder = LatencyRecorder()
        for tally in tallies { tally.latencies.forEach { recorder.record($0) } }
        return Result(pairs: tallies.reduce(0) { $0 + $1.latencies.count }, errors: tallies.reduce(0) { $0 + $1.errors },
                      firstError: tallies.lazy.compactMap(\.firstError).first,
                      seconds: measured, latencies: recorder,
                      etcdCPU: cpuStart.0.flatMap { before in cpuEnd.0.map { $0 - before } },
                      clientCPU: cpuEnd.1 - cpuStart.1)
    }

    private func etcdCPU() -> Double? {
        etcdPIDs.isEmpty ? nil : etcdPIDs.reduce(0) { $0 + ProcessStats.cpuSeconds($1) }
    }

    /// The recipe with the async API: claim, release, until `end`; pairs that finish after
    /// `start` are measured.
    static func loop(_ client: EtcdClient, slot: String, lease: EtcdLeaseID, start: UInt64, end: UInt64) async -> Tally {
        var tally = Tally()
        while true {
            let begin = monotonicNanoseconds()
            guard begin < end else { return tally }
            do throws(EtcdError) {
                let claim = try await client.txn([.absent(slot)], success: [.put(slot, "held", lease: lease)])
                _ = try await client.deleteRange(.key(slot))
                let done = monotonicNanoseconds()
                if begin >= start, done <= end { tally.latencies.append(done - begin) }
                if !claim.succeeded { tally.failed("a claim found its slot taken") }
            } catch {
                if begin >= start { tally.failed("\(error)") }
            }
        }
    }

    /// The same loop through the completion-handler API: each step starts the next from its
    /// completion, on the client's loop thread.
    static func loopWithCompletions(_ client: EtcdClient, slot: String, lease: EtcdLeaseID, start: UInt64, end: UInt64) async -> Tally {
        await withCheckedContinuation { continuation in
            let tally = Mutex(Tally())
            @Sendable func pair() {
                let begin = monotonicNanoseconds()
                guard begin < end else { return continuation.resume(returning: tally.withLock { $0 }) }
                client.txn([.absent(slot)], success: [.put(slot, "held", lease: lease)]) { claim in
                    client.deleteRange(.key(slot)) { release in
                        let done = monotonicNanoseconds()
                        let failure: String? = switch (claim, release) {
                        case (.failure(let error), _), (_, .failure(let error)): "\(error)"
                        case (.success(let claim), _) where !claim.succeeded: "a claim found its slot taken"
                        default: nil
                        }
                        tally.withLock { tally in
                            if begin >= start, done <= end, failure == nil { tally.latencies.append(done - begin) }
                            if begin >= start, let failure { tally.failed(failure) }
                        }
                        pair()
                    }
                }
            }
            pair()
        }
    }
}

/// Runs async `work` from this synchronous command and waits for it (the main thread is not one
/// of the concurrency pool's, so blocking it starves nothing).
private func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<Result<T, any Error>?>(nil)
    Task {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await work()) } catch { outcome = .failure(error) }
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}

private func blocking(_ work: @escaping @Sendable () async -> Void) {
    _ = try? blocking { () async throws -> Void in await work() }
}
