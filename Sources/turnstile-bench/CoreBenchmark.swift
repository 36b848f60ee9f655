import ArgumentParser
import TurnstileCore
#if canImport(Glibc)
import Glibc
#endif

/// Measures the broker alone, in process: the cost of an acquire+release pair with no I/O,
/// no JSON and no syscalls, so that the daemon's figures can be read against it.
struct CoreBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core", abstract: "Acquire+release pairs through the broker, in process.")

    @Option(help: "Pairs per run.") var pairs = 2_000_000
    @Option(help: "Runs (the median is reported).") var runs = 5
    @Option(help: "Leases held throughout (the table's size).") var held = 64
    @Flag(help: "Name a model and a project on every acquire.") var dimensions = false
    @Option(help: "Waiters queued throughout on a full model the pairs never use (what each release's dispatch must pass over).")
    var blockedWaiters = 0

    func run() {
        var config = TurnstileConfig()
        config.limits.global = held + 8
        config.projects = [ProjectConfig(name: "bench", max: held + 8)]
        config.models = [ModelConfig(name: "bench/m", concurrencyLimit: held + 8),
                         ModelConfig(name: "bench/full", concurrencyLimit: 1)]
        config.limits.global += 1
        var broker = Broker(config: config, random: SplitMix64(seed: 1))
        broker.assertsInvariants = false
        queueBlockedWaiters(&broker)
        let request = AcquireRequest(dimensions
            ? AdmissionRequest(project: "bench", mode: .mention, model: ModelKey(provider: "bench", model: "m"))
            : AdmissionRequest())
        var now = Instant(milliseconds: 1)
        for index in 0..<held {
            _ = broker.acquire(request, ticket: Ticket(client: ClientID(UInt64(index)), request: 0), now: now)
        }
        var results: [Double] = []
        for _ in 0..<runs {
            let start = monotonicNanoseconds()
            for serial in 0..<pairs {
                now.milliseconds += 1
                let ticket = Ticket(client: ClientID(9999), request: UInt64(serial))
                guard case .granted(let lease) = broker.acquire(request, ticket: ticket, now: now).reply else {
                    fatalError("benchmark acquire was refused")
                }
                _ = broker.release(lease.token, now: now)
            }
            let elapsed = Double(monotonicNanoseconds() - start)
            results.append(elapsed / Double(pairs))
        }
        results.sort()
        let median = results[results.count / 2]
        print("core: \(pairs) pairs × \(runs) runs, \(held) leases held, dimensions: \(dimensions), "
              + "blocked waiters: \(blockedWaiters)")
        print("  median \(fixed(median, 0)) ns per acquire+release pair (\(fixed(1000 / median, 2)) M pairs/s); runs: "
              + results.map { fixed($0, 0) }.joined(separator: " "))
    }

    /// Fills `bench/full` with one lease and queues `blockedWaiters` acquires behind it, spread
    /// over a few projects and workspaces-free, so that every dispatch meets them.
    private func queueBlockedWaiters(_ broker: inout Broker) {
        guard blockedWaiters > 0 else { return }
        let full = ModelKey(provider: "bench", model: "full")
        let now = Instant(milliseconds: 1)
        _ = broker.acquire(AcquireRequest(AdmissionRequest(project: "blocked-0", mode: .issue, model: full)),
                           ticket: Ticket(client: ClientID(1_000_000), request: 0), now: now)
        for index in 0..<blockedWaiters {
            let request = AcquireRequest(AdmissionRequest(project: "blocked-\(index % 4)", mode: .issue, model: full),
                                         waitMilliseconds: 86_400_000)
            guard case .queued = broker.acquire(request, ticket: Ticket(client: ClientID(1_000_001 + UInt64(index)), request: 0),
                                                 now: now).reply else { fatalError("a blocked waiter was not queued") }
        }
    }
}

/// The monotonic clock in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}
