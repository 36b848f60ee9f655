#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import TurnstileCore

/// A seeded, randomised model-based test of the whole broker: thousands of random operations
/// (acquires over every dimension, heartbeats, releases, parks, attaches, disconnects, process
/// deaths, cancels, pauses, throttles, flags, reloads, revokes, time passing), checked after
/// every step against an independent oracle and the broker's own invariants, then drained:
/// when every holder is gone, everything is back to zero. A failure names its seed and step;
/// `TURNSTILE_SIM_SEEDS` and `TURNSTILE_SIM_STEPS` scale it up.
@Suite("Randomised simulation")
struct SimulationTests {
    static let seeds = UInt64(environmentInteger("TURNSTILE_SIM_SEEDS") ?? 2000)
    static let steps = environmentInteger("TURNSTILE_SIM_STEPS") ?? 200
    /// The seeds are split into shards that run in parallel.
    static let shards = 16

    @Test(arguments: 0..<Self.shards)
    func randomOperationSequencesKeepEveryInvariant(shard: Int) {
        var totalSteps = 0
        var seedsRun = 0
        for seed in stride(from: UInt64(shard) + 1, through: Self.seeds, by: Self.shards) {
            var run = SimulationRun(seed: seed)
            for step in 0..<Self.steps {
                run.step()
                totalSteps += 1
                if let problem = run.problems.first {
                    Issue.record("seed \(seed), step \(step) (\(run.lastOperation)): \(problem)")
                    return
                }
            }
            run.drain()
            if let problem = run.problems.first {
                Issue.record("seed \(seed), drain: \(problem)")
                return
            }
            seedsRun += 1
        }
        #expect(seedsRun > 0 || Self.seeds <= UInt64(shard), "shard \(shard) ran seeds")
        #expect(totalSteps == seedsRun * Self.steps)
    }

    @Test func theSameSeedReplaysTheSameRun() {
        var first = SimulationRun(seed: 42)
        var second = SimulationRun(seed: 42)
        for _ in 0..<300 {
            first.step()
            second.step()
        }
        #expect(first.trace == second.trace)
        #expect(first.h.broker.status(now: first.h.now) == second.h.broker.status(now: second.h.now))
    }
}

/// Reads a whole number from the environment.
func environmentInteger(_ name: String) -> Int? {
    guard let value = getenv(name) else { return nil }
    return Int(String(cString: value))
}
