import Testing
@testable import TurnstileCore

/// Proportional fairness multiplies limits together; whatever limits a config (or a test)
/// builds, the fair share and the waiter order are computed without overflow.
@Suite("Proportional fairness with extreme limits")
struct ProportionalOverflowTests {
    @Test func fairSharesOfTheLargestLimitsAreExact() {
        var h = Harness { config in
            config.limits.fairness = .proportional
            config.limits.global = Int.max
            config.limits.time = Int.max
            config.limits.issue = Int.max
        }
        #expect(h.broker.fairShare(.time) == Int.max / 2)
        #expect(h.broker.fairShare(.mention) == nil)
        #expect(h.grant(mode: .time) != nil)
        #expect(h.grant(mode: .issue) != nil)
        #expect(h.violations().isEmpty)
    }

    @Test func fourExaPermitsWithTheDefaultQuotas() {
        var h = Harness { config in
            config.limits.fairness = .proportional
            config.limits.global = 4_000_000_000_000_000_000
        }
        #expect(h.broker.fairShare(.time) == 2_400_000_000_000_000_000)
        #expect(h.broker.fairShare(.issue) == 1_600_000_000_000_000_000)
        #expect(h.grant(mode: .time) != nil)
    }

    @Test func waiterOrderComparesRatiosOfHugeSharesWithoutOverflow() {
        var h = Harness { config in
            config.limits.fairness = .proportional
            config.limits.global = 2
            config.limits.time = Int.max
            config.limits.issue = Int.max
        }
        let first = h.grant(mode: .mention)!
        _ = h.grant(mode: .mention)
        #expect(h.acquire(mode: .time, wait: 10_000).isQueued)
        #expect(h.acquire(mode: .any, wait: 10_000).isQueued)
        _ = h.effects()
        // Reload to a huge global: the ratios now multiply shares near Int.max.
        var config = h.broker.config
        config.limits.global = Int.max
        h.broker.decideReload(config, now: h.now)
        h.release(first)
        #expect(h.grantedTickets().count == 2)
        #expect(h.violations().isEmpty)
    }
}
