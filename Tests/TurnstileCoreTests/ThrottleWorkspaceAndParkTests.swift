import Testing
@testable import TurnstileCore

/// The seed scheduler's tests (tandem `automation/scheduler.rs` and its `rate_limit.rs`),
/// ported to the broker: tandem's "capacity" is Turnstile's `global`, its tenant contexts are
/// Turnstile's tenant names, and its pause-like capacity release is `park`.
@Suite("Tenant-scoped throttles, workspace locks and park")
struct ThrottleWorkspaceAndParkTests {
    @Test func providerRateLimitAdmissionIsTenantScoped() {
        var h = Harness { $0.limits.global = 4 }
        h.broker.decideThrottle(provider: "openai", tenant: "org-a", retryAfterMilliseconds: 60_000, now: h.now)
        let refused = h.acquire(providers: ["openai"], tenant: "org-a").refusal
        #expect(refused?.reason == .rateLimit)
        #expect(refused?.retryAfterMilliseconds == 60_000)
        #expect(h.grant(tenant: "org-b") != nil)
        #expect(h.acquire(providers: ["openai"], tenant: "org-b").lease != nil, "B does not inherit A's throttle")
    }

    @Test func differentWorkspaceRunsAdmitConcurrently() {
        var h = Harness()
        let a = h.grant(workspace: "/work/repo-a")
        let b = h.grant(workspace: "/work/repo-b")
        #expect(a != nil && b != nil)
        let status = h.broker.status(now: h.now)
        #expect(status.global.inUse == 2)
        #expect(status.workspaces.map(\.path) == ["/work/repo-a", "/work/repo-b"])
        #expect(status.workspaces.map(\.fence) == [a!.fence, b!.fence])
    }

    @Test func sameWorkspaceContentionQueuesBehindWorkspaceLock() {
        var h = Harness()
        let a = h.grant(workspace: "/work/repo-a")!
        let refusal = h.acquire(workspace: "/work/repo-a").refusal
        #expect(refusal?.reason == .workspaceLock)
        #expect(refusal?.detail.contains("/work/repo-a") == true)
        #expect(h.broker.status(now: h.now).global.inUse < h.broker.config.limits.global,
                "the lock is per workspace, not capacity")
        h.release(a)
        #expect(h.grant(workspace: "/work/repo-a") != nil)
    }

    @Test func capacityContentionReportsGlobalAndDefaultIsEight() {
        var h = Harness()
        #expect(h.broker.config.limits.global == 8)
        var first: Lease?
        for index in 0..<8 {
            let lease = h.grant(workspace: "/work/repo-\(index)")
            #expect(lease != nil)
            if index == 0 { first = lease }
        }
        let refusal = h.acquire(workspace: "/work/repo-9").refusal
        #expect(refusal?.reason == .global)
        #expect(refusal?.limit == 8 && refusal?.inUse == 8)
        h.release(first!)
        #expect(h.grant(workspace: "/work/repo-9") != nil)
    }

    @Test func terminalReleaseFreesCapacityAndWorkspaceLock() {
        var h = Harness { $0.limits.global = 1 }
        let blocker = h.grant()!
        #expect(h.acquire(workspace: "/work/repo-a", wait: 10_000).isQueued)
        h.advance(250)
        h.release(blocker)
        let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease } else { nil } }
        #expect(granted.count == 1)
        #expect(granted.first?.waitedMilliseconds == 250)
        #expect(h.broker.metrics.admittedTotal == 2)
        h.release(granted[0])
        let status = h.broker.status(now: h.now)
        #expect(status.global.inUse == 0)
        #expect(status.workspaces.isEmpty)
        #expect(h.broker.metrics.completedTotal == 2)
        #expect(status.waiting.isEmpty)
        #expect(h.grant(workspace: "/work/repo-a") != nil)
    }

    @Test func capacityReleaseWithoutWorkspaceReleaseStillBlocksSameWorkspace() throws {
        var h = Harness()
        let a = h.grant(workspace: "/work/repo-a")!
        #expect(try h.broker.decidePark(a.token, now: h.now).get().parked)
        #expect(h.broker.status(now: h.now).global.inUse == 0)
        #expect(h.acquire(workspace: "/work/repo-a").refusal?.reason == .workspaceLock)
        h.release(a)
        #expect(h.grant(workspace: "/work/repo-a") != nil)
    }

    @Test func queueMetricsCountReasonsAndRecordWaitTimes() {
        var h = Harness { $0.limits.global = 1 }
        let a = h.grant(workspace: "/work/repo-a")!
        #expect(h.acquire(workspace: "/work/repo-b", wait: 60_000).isQueued)
        var status = h.broker.status(now: h.now)
        #expect(status.global.inUse == 1)
        #expect(status.queuedByReason == [.global: 1])
        h.advance(40)
        h.release(a)
        status = h.broker.status(now: h.now)
        #expect(status.metrics.admittedTotal == 2)
        #expect(status.queuedByReason.isEmpty)
        #expect(status.metrics.averageWaitMilliseconds == 20, "immediate grants count as 0 ms: (0 + 40) / 2")
        #expect(status.metrics.p95WaitMilliseconds == 40)
    }

    // rate_limit.rs

    @Test func zeroLengthThrottleIsNotInForce() {
        var table = ThrottleTable()
        let key = ThrottleTable.Key(tenant: "local", provider: "provider-a")
        table.record(key, retryAfterMilliseconds: 0, now: Instant(milliseconds: 5))
        #expect(table.remaining(key, now: Instant(milliseconds: 5)) == nil)
    }

    @Test func expiredThrottleIsNotActive() {
        var table = ThrottleTable()
        let key = ThrottleTable.Key(tenant: "local", provider: "provider-a")
        table.record(key, retryAfterMilliseconds: 1000, now: Instant(milliseconds: 0))
        #expect(table.remaining(key, now: Instant(milliseconds: 999)) == 1)
        #expect(table.remaining(key, now: Instant(milliseconds: 1000)) == nil)
        let ended = table.expire(now: Instant(milliseconds: 1000))
        #expect(ended)
        #expect(table.earliestEnd == nil)
    }

    @Test func activeThrottleRemainsThrottled() {
        var table = ThrottleTable()
        let key = ThrottleTable.Key(tenant: "local", provider: "provider-a")
        table.record(key, retryAfterMilliseconds: 60_000, now: Instant(milliseconds: 0))
        #expect(table.remaining(key, now: Instant(milliseconds: 30_000)) == 30_000)
        let ended = table.expire(now: Instant(milliseconds: 30_000))
        #expect(!ended)
        #expect(table.earliestEnd == Instant(milliseconds: 60_000))
    }

    @Test func providerThrottlesAreTenantScoped() {
        var table = ThrottleTable()
        let now = Instant(milliseconds: 0)
        table.record(.init(tenant: "org-a", provider: "openai"), retryAfterMilliseconds: 60_000, now: now)
        #expect(table.remaining(.init(tenant: "org-a", provider: "openai"), now: now) != nil)
        #expect(table.remaining(.init(tenant: "org-b", provider: "openai"), now: now) == nil)
        #expect(table.remaining(.init(tenant: "local", provider: "openai"), now: now) == nil)
        #expect(table.remaining(.init(tenant: "org-a", provider: "OpenAI"), now: now) != nil, "providers ignore case")
    }
}
