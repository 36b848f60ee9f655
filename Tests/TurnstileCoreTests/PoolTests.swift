import Testing
@testable import TurnstileCore

/// Named counting semaphores (protocol/PROTOCOL.md §8.2): configured with `[[pools]]` or ad hoc
/// from `pool_limits`, as `sem --id build -j 3` does, in the same atomic admission as every
/// other limit.
@Suite("Pools")
struct PoolTests {
    @Test func aConfiguredPoolAdmitsUpToItsLimitAndSaysPool() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 2)] }
        #expect(h.acquire(pools: ["gpu"]).lease != nil)
        #expect(h.acquire(pools: ["gpu"]).lease != nil)
        let refusal = h.acquire(pools: ["gpu"]).refusal
        #expect(refusal?.reason == .pool && refusal?.limit == 2 && refusal?.inUse == 2)
        #expect(h.grant() != nil, "a pool limits only those that name it")
        #expect(h.violations().isEmpty)
    }

    @Test func anAdHocPoolIsDefinedByItsFirstHolderAndForgottenWhenEmpty() {
        var h = Harness()
        let first = h.acquire(pools: ["build"], limits: ["build": 1]).lease!
        #expect(h.broker.status(now: h.now).pools == [.init(name: "build", limit: 1, inUse: 1, waiting: 0, adHoc: true)])
        #expect(h.acquire(pools: ["build"]).refusal?.reason == .pool, "the limit in force applies without pool_limits")
        if case .invalid(let field, _) = h.acquire(pools: ["build"], limits: ["build": 5]) {
            #expect(field == "pool_limits")
        } else {
            Issue.record("another limit while units are held is a bad_request")
        }
        h.release(first)
        #expect(h.broker.status(now: h.now).pools.isEmpty, "forgotten when empty")
        #expect(h.acquire(pools: ["build"], limits: ["build": 5]).lease != nil, "and may be defined anew")
    }

    @Test func aPoolWithNoLimitAnywhereIsABadRequest() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 1)] }
        if case .invalid(let field, _) = h.acquire(pools: ["nowhere"]) { #expect(field == "pools") } else { Issue.record("no limit") }
        if case .invalid(let field, _) = h.acquire(pools: ["gpu"], limits: ["gpu": 3]) {
            #expect(field == "pool_limits", "a configured pool's limit is the config's")
        } else {
            Issue.record("configured limit disagreement")
        }
        #expect(h.broker.status(now: h.now).global.inUse == 0, "nothing was taken")
    }

    @Test func poolComesAfterWorkspaceAndBeforeModeInTheReasonOrder() {
        var h = Harness {
            $0.pools = [PoolConfig(name: "gpu", limit: 1)]
            $0.limits.time = 0
        }
        _ = h.acquire(pools: ["gpu"], workspace: "/w")
        #expect(h.acquire(pools: ["gpu"], workspace: "/w", mode: .time).refusal?.reason == .workspaceLock)
        #expect(h.acquire(pools: ["gpu"], mode: .time).refusal?.reason == .pool)
        #expect(h.acquire(pools: [], mode: .time).refusal?.reason == .mode)
    }

    @Test func aRefusedAcquireTakesNoUnitOfAnyPool() {
        var h = Harness { $0.pools = [PoolConfig(name: "a", limit: 1), PoolConfig(name: "b", limit: 1)] }
        _ = h.acquire(pools: ["b"])
        #expect(h.acquire(pools: ["a", "b"]).refusal?.reason == .pool)
        #expect(h.acquire(pools: ["a"]).lease != nil, "pool a was not taken by the refused acquire")
        #expect(h.violations().isEmpty)
    }

    @Test func aWaiterForAFullPoolDoesNotHoldUpOthersAndGetsTheFreedUnit() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 1)] }
        let holder = h.acquire(pools: ["gpu"]).lease!
        let waiting = h.acquire(pools: ["gpu"], wait: 60_000, client: 2)
        #expect(waiting.isQueued)
        #expect(h.grant(client: 3) != nil, "a waiter blocked by its pool holds up no one else")
        _ = h.effects()
        h.release(holder)
        #expect(h.grantedTickets().count == 1, "the freed unit goes to the waiter at once")
        #expect(h.violations().isEmpty)
    }

    @Test func parkGivesTheUnitBackAndUnparkTakesItAgain() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 1)] }
        let lease = h.acquire(pools: ["gpu"]).lease!
        _ = h.broker.decidePark(lease.token, now: h.now)
        let other = h.acquire(pools: ["gpu"]).lease!
        let t = h.ticket()
        let unpark = h.broker.decideUnpark(lease.token, ticket: t, waitMilliseconds: 0, now: h.now)
        if case .success(.refused(let refusal)) = unpark { #expect(refusal.reason == .pool) } else { Issue.record("\(unpark)") }
        h.release(other)
        let again = h.broker.decideUnpark(lease.token, ticket: h.ticket(), waitMilliseconds: 0, now: h.now)
        if case .success(.granted) = again {} else { Issue.record("\(again)") }
        #expect(h.violations().isEmpty)
    }

    @Test func leasesComeBackWithTheirPoolsAfterARestart() {
        var h = Harness()
        _ = h.acquire(pools: ["build"], limits: ["build": 2])
        let saved = h.broker.snapshot(now: h.now, wall: h.wall)
        var restarted = Harness()
        restarted.broker.decideRestore(saved, now: restarted.now, wall: restarted.wall)
        #expect(restarted.broker.status(now: restarted.now).pools == [.init(name: "build", limit: 2, inUse: 1, waiting: 0, adHoc: true)])
        #expect(restarted.violations().isEmpty)
    }

    @Test func aReloadChangesAConfiguredLimitAndKeepsTheHolders() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 2)] }
        _ = h.acquire(pools: ["gpu"])
        _ = h.acquire(pools: ["gpu"])
        var lowered = h.broker.config
        lowered.pools = [PoolConfig(name: "gpu", limit: 1)]
        h.broker.decideReload(lowered, now: h.now)
        #expect(h.broker.status(now: h.now).pools.first?.inUse == 2)
        #expect(h.acquire(pools: ["gpu"]).refusal?.reason == .pool)
        #expect(h.violations().isEmpty)
    }
}

extension Harness {
    /// Acquires one unit of each of `pools`, with `limits` as `pool_limits`.
    mutating func acquire(pools: [String], limits: [String: Int] = [:], project: String = Names.globalProject,
                          workspace: String? = nil, mode: Mode = .any, wait: UInt64 = 0, pgid: Int32? = nil,
                          client: UInt64 = 1) -> AcquireOutcome {
        let request = AcquireRequest(AdmissionRequest(project: project, mode: mode, workspace: workspace,
                                                      pools: pools, poolLimits: limits),
                                     waitMilliseconds: wait, pgid: pgid)
        let t = ticket(client)
        return decide(request, ticket: t)
    }
}
