import Testing
@testable import TurnstileCore

/// README, "Concepts"; protocol/PROTOCOL.md §6: the reasons, checked and reported in their normative order, and a refusal that
/// consumes nothing.
@Suite("Admission order and refusals")
struct AdmissionOrderTests {
    /// A broker where one request is blocked by every limit at once; each step lifts the
    /// first blocker and the reason must move to the next one in the spec's order.
    @Test func reasonsAreReportedInTheSpecOrder() throws {
        var h = Harness {
            $0.limits.global = 3; $0.limits.time = 2; $0.limits.issue = 2; $0.limits.fairness = .proportional
            $0.projects = [ProjectConfig(name: "alpha", max: 1, maxMention: 1)]
            $0.models = [ModelConfig(name: "p/m", concurrencyLimit: 1)]
        }
        // Fill: model p/m, workspace /w, project alpha (1 of 1, mention 1 of 1), mode mention.
        let holdsAlpha = h.grant(project: "alpha", mode: .mention, model: "p/m", workspace: "/w")!
        // Fill the global limit with mention leases elsewhere.
        let filler = h.grant(project: "other", mode: .mention)!
        _ = h.grant(project: "other", mode: .mention)!
        _ = h.broker.decidePause("alpha", now: h.now)
        h.broker.decideThrottle(provider: "q", tenant: "local", retryAfterMilliseconds: 5000, now: h.now)

        func reason() -> BlockReason? {
            h.acquire(project: "alpha", mode: .mention, model: "p/m", providers: ["q"], workspace: "/w/").refusal?.reason
        }
        #expect(reason() == .paused)
        _ = h.broker.decideResume("alpha", now: h.now)
        #expect(reason() == .rateLimit)
        h.advance(5000)
        #expect(reason() == .workspaceLock)
        // Free the workspace but keep the project full.
        h.release(holdsAlpha)
        let alphaAgain = h.grant(project: "alpha", mode: .mention, model: "p/m")!
        #expect(reason() == .project)
        // Raise the project cap so only the mention cap is left.
        var config = h.broker.config
        config.projects = [ProjectConfig(name: "alpha", max: 5, maxMention: 1)]
        h.broker.decideReload(config, now: h.now)
        #expect(reason() == .mention)
        config.projects = []
        h.broker.decideReload(config, now: h.now)
        #expect(reason() == .model)
        h.release(alphaAgain)
        _ = h.grant(project: "other", mode: .mention)!
        #expect(reason() == .global)
        h.release(filler)
        #expect(h.acquire(project: "alpha", mode: .mention, model: "p/m", providers: ["q"], workspace: "/w").lease != nil)
    }

    @Test func modeComesBeforeProject() {
        var h = Harness { $0.limits.time = 1; $0.projects = [ProjectConfig(name: "alpha", max: 1)] }
        _ = h.grant(project: "alpha", mode: .time)!
        #expect(h.acquire(project: "alpha", mode: .time).refusal?.reason == .mode)
        #expect(h.acquire(project: "alpha", mode: .issue).refusal?.reason == .project)
    }

    @Test func proportionalComesBeforeModel() {
        var h = Harness {
            $0.limits.global = 4; $0.limits.time = 3; $0.limits.issue = 3; $0.limits.fairness = .proportional
            $0.models = [ModelConfig(name: "p/m", concurrencyLimit: 1)]
        }
        // time share = floor(4 × 3 / 6) = 2, below the time quota of 3.
        _ = h.grant(mode: .time, model: "p/m")!
        _ = h.grant(mode: .time)!
        let refusal = h.acquire(mode: .time, model: "p/m").refusal
        #expect(refusal?.reason == .proportional)
        #expect(refusal?.limit == 2 && refusal?.inUse == 2)
        #expect(h.acquire(mode: .issue, model: "p/m").refusal?.reason == .model)
    }

    @Test func refusalsCarryLimitAndUse() {
        var h = Harness { $0.limits.global = 2; $0.limits.time = 1 }
        _ = h.grant(mode: .time)
        let mode = h.acquire(mode: .time).refusal!
        #expect(mode.reason == .mode && mode.limit == 1 && mode.inUse == 1)
        _ = h.grant(mode: .issue)
        let global = h.acquire(mode: .mention).refusal!
        #expect(global.reason == .global && global.limit == 2 && global.inUse == 2)
        #expect(global.retryAfterMilliseconds == nil)
    }

    @Test func aRefusedAcquireConsumesNothing() {
        var h = Harness {
            $0.limits.global = 2
            $0.models = [ModelConfig(name: "p/m", concurrencyLimit: 1)]
        }
        _ = h.grant(model: "p/m", workspace: "/w1")
        let before = h.broker.status(now: h.now)
        let beforeFence = h.broker.fenceHighWater
        #expect(h.acquire(project: "x", mode: .time, model: "p/m", workspace: "/w2").refusal?.reason == .model)
        let after = h.broker.status(now: h.now)
        #expect(after.global == before.global && after.modes == before.modes && after.models == before.models)
        #expect(after.workspaces == before.workspaces, "the second workspace was not locked")
        #expect(h.broker.fenceHighWater == beforeFence, "no fence is spent on a refusal")
        #expect(h.broker.metrics.refusedTotal == 1)
        #expect(h.violations().isEmpty)
    }

    @Test func workspaceSpellingsShareOneLock() {
        var h = Harness()
        _ = h.grant(workspace: "/src/app/")
        for spelling in ["/src/app", "/src//app", "/src/./app", "/src/x/../app/"] {
            #expect(h.acquire(workspace: spelling).refusal?.reason == .workspaceLock, "\(spelling)")
        }
        #expect(h.grant(workspace: "/src/app2") != nil)
    }

    @Test func pausedProjectsHoldQueuedWaitersUntilResume() {
        var h = Harness()
        _ = h.broker.decidePause("alpha", now: h.now)
        #expect(h.acquire(project: "alpha", wait: 60_000).isQueued)
        #expect(h.grantedTickets().isEmpty)
        _ = h.broker.decideResume("alpha", now: h.now)
        #expect(h.grantedTickets().count == 1, "resume wakes the project's waiters")
    }

    @Test func hardProviderThrottleHoldsEvenWhenTheModelIsFree() {
        var h = Harness()
        h.broker.decideThrottle(provider: "github", tenant: "local", retryAfterMilliseconds: 3000, now: h.now)
        let refusal = h.acquire(model: "anthropic/claude-sonnet-4", providers: ["github"]).refusal
        #expect(refusal?.reason == .rateLimit)
        #expect(refusal?.retryAfterMilliseconds == 3000)
        #expect(h.acquire(model: "anthropic/claude-sonnet-4", providers: ["github"], wait: 10_000).isQueued)
        h.advance(2999)
        #expect(h.grantedTickets().isEmpty)
        h.advance(1)
        #expect(h.grantedTickets().count == 1, "the throttle's end wakes its waiter")
    }

    @Test func aThrottleIsNeverShortened() {
        var h = Harness()
        let first = h.broker.decideThrottle(provider: "p", tenant: "local", retryAfterMilliseconds: 10_000, now: h.now)
        let shorter = h.broker.decideThrottle(provider: "p", tenant: "local", retryAfterMilliseconds: 2_000, now: h.now)
        h.advance(1000)
        let longer = h.broker.decideThrottle(provider: "p", tenant: "local", retryAfterMilliseconds: 20_000, now: h.now)
        #expect([first, shorter, longer] == [10_000, 10_000, 20_000])
        let announced = h.effects().compactMap { effect -> UInt64? in
            if case .throttled(_, _, let ms) = effect { ms } else { nil }
        }
        #expect(announced == [10_000, 10_000, 20_000])
    }
}
