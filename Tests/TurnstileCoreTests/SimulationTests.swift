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
    static let seeds = UInt64(environmentInteger("TURNSTILE_SIM_SEEDS") ?? 60)
    static let steps = environmentInteger("TURNSTILE_SIM_STEPS") ?? 250

    @Test func randomOperationSequencesKeepEveryInvariant() {
        var totalSteps = 0
        for seed in 1...Self.seeds {
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
        }
        #expect(totalSteps == Int(Self.seeds) * Self.steps)
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
