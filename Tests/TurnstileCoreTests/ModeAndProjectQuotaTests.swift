import Testing
@testable import TurnstileCore

/// The seed's `ConcurrencyController` tests (terraphim orchestrator `concurrency.rs`), ported
/// with the same behaviour. Releases are synchronous here, so the seed's 10 ms sleeps are gone.
@Suite("Mode quotas, project caps and use counts")
struct ModeAndProjectQuotaTests {
    @Test func acquireRelease() {
        var h = Harness { $0.limits.global = 2; $0.limits.time = 2; $0.limits.issue = 2 }
        let p1 = h.grant(mode: .time)
        #expect(p1 != nil)
        #expect(h.grant(mode: .time) != nil)
        #expect(h.grant(mode: .time) == nil, "global limit of 2")
        h.release(p1!)
        #expect(h.grant(mode: .time) != nil)
        #expect(h.violations().isEmpty)
    }

    @Test func modeQuotas() {
        var h = Harness { $0.limits.global = 10; $0.limits.time = 1; $0.limits.issue = 1 }
        #expect(h.grant(mode: .time) != nil)
        #expect(h.acquire(mode: .time).refusal?.reason == .mode, "time quota")
        #expect(h.grant(mode: .issue) != nil, "issue is independent of time")
        #expect(h.acquire(mode: .issue).refusal?.reason == .mode, "issue quota")
    }

    @Test func runningCounts() {
        var h = Harness { $0.limits.global = 5; $0.limits.time = 3; $0.limits.issue = 3 }
        #expect(h.grant(mode: .time) != nil)
        #expect(h.grant(mode: .issue) != nil)
        let status = h.broker.status(now: h.now)
        #expect(status.modes.first { $0.mode == .time }?.inUse == 1)
        #expect(status.modes.first { $0.mode == .issue }?.inUse == 1)
    }

    @Test func perProjectCapSaturatesIndependently() {
        var h = Harness {
            $0.limits.global = 10; $0.limits.time = 5; $0.limits.issue = 5
            $0.projects = [ProjectConfig(name: "alpha", max: 1), ProjectConfig(name: "beta", max: 2)]
        }
        let a1 = h.grant(project: "alpha", mode: .time)
        #expect(a1 != nil)
        #expect(h.acquire(project: "alpha", mode: .time).refusal?.reason == .project,
                "alpha should be saturated after reaching its cap of 1")
        #expect(h.grant(project: "beta", mode: .time) != nil)
        #expect(h.grant(project: "beta", mode: .time) != nil)
        #expect(h.acquire(project: "beta", mode: .time).refusal?.reason == .project,
                "beta should be saturated after reaching its cap of 2")
        h.release(a1!)
        #expect(h.grant(project: "alpha", mode: .time) != nil, "alpha should have capacity after release")
    }

    @Test func perProjectMentionCap() {
        var h = Harness {
            $0.limits.global = 10; $0.limits.time = 5; $0.limits.issue = 5
            $0.projects = [ProjectConfig(name: "alpha", max: 5, maxMention: 1)]
        }
        #expect(h.grant(project: "alpha", mode: .mention) != nil)
        #expect(h.acquire(project: "alpha", mode: .mention).refusal?.reason == .mention,
                "mention cap of 1 should block a second mention acquire")
        #expect(h.grant(project: "alpha", mode: .time) != nil, "other modes still fit under the total cap")
    }

    @Test func mentionCapWorksWithoutTotalCap() {
        var h = Harness { $0.projects = [ProjectConfig(name: "alpha", maxMention: 1)] }
        #expect(h.grant(project: "alpha", mode: .mention) != nil)
        #expect(h.acquire(project: "alpha", mode: .mention).refusal?.reason == .mention)
        #expect(h.grant(project: "alpha", mode: .issue) != nil)
    }

    @Test func fairnessPolicyParsing() {
        #expect(FairnessPolicy(parsing: "round_robin") == .roundRobin)
        #expect(FairnessPolicy(parsing: "priority") == .priority)
        #expect(FairnessPolicy(parsing: "proportional") == .proportional)
        #expect(FairnessPolicy(parsing: "unknown") == nil)
    }

    @Test(arguments: ["round_robin", "round-robin", "roundrobin", "Round-Robin", "ROUNDROBIN"])
    func fairnessAliases(name: String) {
        #expect(FairnessPolicy(parsing: name) == .roundRobin)
    }

    @Test func anyHasItsOwnBucketAndNoQuota() {
        // The seed counted `any` as time-driven without checking the time quota; here `any`
        // neither uses nor is stopped by the time quota.
        var h = Harness { $0.limits.global = 8; $0.limits.time = 1 }
        #expect(h.grant(mode: .time) != nil)
        #expect(h.grant(mode: .any) != nil)
        #expect(h.grant(mode: .any) != nil)
        let status = h.broker.status(now: h.now)
        #expect(status.modes.first { $0.mode == .time }?.inUse == 1)
        #expect(status.modes.first { $0.mode == .any }?.inUse == 2)
        #expect(h.acquire(mode: .time).refusal?.reason == .mode)
    }
}
