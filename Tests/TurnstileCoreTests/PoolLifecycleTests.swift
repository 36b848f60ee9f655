import Synchronization
import Testing
@testable import TurnstileCore

/// Pools across the broker's life (protocol/PROTOCOL.md §8.2): waiters and leases carry the
/// limit in force of each ad-hoc pool they name, so that neither fairness nor a restart
/// depends on which acquire happened to define the pool; a reload or a restart that changes
/// the configured pools keeps every live lease and gives every held pool a limit.
@Suite("Pools across waits, reloads and restarts")
struct PoolLifecycleTests {
    /// Snapshots `h` and restores it into a fresh broker with `configure`'s config.
    private func restarted(_ h: Harness, _ configure: (inout TurnstileConfig) -> Void = { _ in }) -> Harness {
        var fresh = Harness(seed: 2, configure)
        fresh.broker.decideRestore(h.broker.snapshot(now: h.now, wall: h.wall), now: fresh.now, wall: fresh.wall)
        return fresh
    }

    private func pool(_ h: Harness, _ name: String) -> BrokerStatus.PoolUse? {
        h.broker.status(now: h.now).pools.first { $0.name == name }
    }

    @Test func aWaiterWithoutPoolLimitsKeepsTheLimitItWasAcceptedUnder() {
        var h = Harness { $0.limits.time = 1 }
        let definer = h.acquire(pools: ["build"], limits: ["build": 1]).lease!
        let timeHolder = h.grant(mode: .time)!
        let first = h.acquire(pools: ["build"], mode: .time, wait: 60_000, client: 2)
        #expect(first.refusal?.reason == .pool, "no pool_limits: the limit in force, 1")
        h.release(definer)
        #expect(pool(h, "build") == nil, "the pool is forgotten while the waiter waits for its mode")
        let second = h.acquire(pools: ["build"], limits: ["build": 2], mode: .time, wait: 60_000, client: 3)
        #expect(second.refusal?.reason == .mode)
        _ = h.effects()
        h.release(timeHolder)
        // Before the waiters carried their limit, the older one had none left and, blocked,
        // hid the younger one of its demand group while the mode slot stayed free.
        #expect(h.grantedTickets().count == 1, "the older waiter is granted and defines the pool at 1")
        #expect(pool(h, "build") == .init(name: "build", limit: 1, inUse: 1, waiting: 1, adHoc: true),
                "the younger one waits under the limit in force")
        #expect(h.violations().isEmpty)
    }

    @Test func statusCountsTheWaitersOfEachPool() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 1), PoolConfig(name: "db", limit: 1)] }
        _ = h.acquire(pools: ["gpu"]).lease!
        #expect(h.acquire(pools: ["db", "gpu"], wait: 60_000, client: 2).refusal?.reason == .pool)
        #expect(h.acquire(pools: ["gpu"], wait: 60_000, client: 3).isQueued)
        let status = h.broker.status(now: h.now)
        #expect(status.pools.map(\.waiting) == [2, 0], "gpu blocks both, db none")
        #expect(status.waiting.map(\.pool) == ["gpu", "gpu"])
        #expect(status.queuedByReason[.pool] == 2)
    }

    @Test func aRestartKeepsAnAdHocPoolWhoseDefinerHasLeft() {
        var h = Harness()
        let definer = h.acquire(pools: ["build"], limits: ["build": 3]).lease!
        let follower = h.acquire(pools: ["build"], client: 2).lease!
        #expect(follower.request.poolLimits == ["build": 3], "the lease carries the limit in force")
        h.release(definer)
        var after = restarted(h)
        #expect(pool(after, "build") == .init(name: "build", limit: 3, inUse: 1, waiting: 0, adHoc: true))
        if case .invalid(let field, _) = after.acquire(pools: ["build"], limits: ["build": 5]) {
            #expect(field == "pool_limits", "still held: another limit is a bad_request")
        } else {
            Issue.record("the restored pool lost its limit")
        }
        #expect(after.violations().isEmpty)
    }

    @Test func aRestartWithoutAHeldPoolsConfigLetsNoMoreOutThanIsHeld() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 4)] }
        let leases = (0..<2).map { _ in h.acquire(pools: ["gpu"]).lease! }
        var after = restarted(h)
        #expect(pool(after, "gpu") == .init(name: "gpu", limit: 2, inUse: 2, waiting: 0, adHoc: true))
        #expect(after.acquire(pools: ["gpu"]).refusal?.reason == .pool)
        let released = after.release(leases[0])
        #expect(released)
        #expect(after.acquire(pools: ["gpu"]).lease != nil, "a unit given back can be taken again")
        #expect(after.violations().isEmpty)
    }

    @Test func aRestartWhoseConfigNowNamesAnAdHocPoolTakesTheConfigsLimit() {
        var h = Harness()
        _ = h.acquire(pools: ["build"], limits: ["build": 3]).lease!
        var after = restarted(h) { $0.pools = [PoolConfig(name: "build", limit: 1)] }
        #expect(after.broker.status(now: after.now).pools == [.init(name: "build", limit: 1, inUse: 1, waiting: 0, adHoc: false)])
        #expect(after.acquire(pools: ["build"]).refusal?.reason == .pool)
        #expect(after.violations().isEmpty)
    }

    @Test func aReloadThatDropsAHeldPoolKeepsItAdHocAtItsLastLimit() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 1)] }
        let holder = h.acquire(pools: ["gpu"]).lease!
        #expect(h.acquire(pools: ["gpu"], wait: 60_000, client: 2).isQueued)
        _ = h.effects()
        var config = h.broker.config
        config.pools = []
        h.broker.decideReload(config, now: h.now)
        let changed = h.effects().compactMap { if case .leaseChanged(let lease) = $0 { lease } else { nil } }
        #expect(changed.map(\.request.poolLimits) == [["gpu": 1]], "the holder's limit is journaled")
        #expect(pool(h, "gpu") == .init(name: "gpu", limit: 1, inUse: 1, waiting: 1, adHoc: true))
        if case .invalid(let field, _) = h.acquire(pools: ["gpu"], limits: ["gpu": 2]) { #expect(field == "pool_limits") } else {
            Issue.record("a held pool's limit stands")
        }
        h.release(holder)
        #expect(h.grantedTickets().count == 1, "the waiter gets the unit, under the limit it was accepted with")
        #expect(pool(h, "gpu")?.limit == 1)
        #expect(h.violations().isEmpty)
        let after = restarted(h)
        #expect(pool(after, "gpu") == .init(name: "gpu", limit: 1, inUse: 1, waiting: 0, adHoc: true))
    }

    @Test func aReloadThatConfiguresAnAdHocPoolGivesItTheConfigsLimit() {
        var h = Harness()
        _ = h.acquire(pools: ["build"], limits: ["build": 1]).lease!
        #expect(h.acquire(pools: ["build"], wait: 60_000, client: 2).isQueued)
        var config = h.broker.config
        config.pools = [PoolConfig(name: "build", limit: 2)]
        h.broker.decideReload(config, now: h.now)
        #expect(h.grantedTickets().count == 1, "the raised limit grants the waiter at once")
        #expect(h.broker.status(now: h.now).pools == [.init(name: "build", limit: 2, inUse: 2, waiting: 0, adHoc: false)])
        #expect(h.violations().isEmpty)
    }

    @Test func anUnparkOfAPoolThatLostItsLimitIsABadRequest() {
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 1)] }
        let lease = h.acquire(pools: ["gpu"]).lease!
        _ = h.broker.decidePark(lease.token, now: h.now)
        var after = restarted(h)
        let unpark = after.broker.decideUnpark(lease.token, ticket: after.ticket(), waitMilliseconds: 60_000, now: after.now)
        if case .failure(.badRequest(let field, _)) = unpark { #expect(field == "pools") } else { Issue.record("\(unpark)") }
        #expect(after.violations().isEmpty)
    }

    @Test func anUnparkUnderAnotherAdHocLimitTakesTheLimitInForce() {
        var h = Harness()
        let parked = h.acquire(pools: ["build"], limits: ["build": 1]).lease!
        _ = h.broker.decidePark(parked.token, now: h.now)
        _ = h.acquire(pools: ["build"], limits: ["build": 2], client: 2).lease!
        let unpark = h.broker.decideUnpark(parked.token, ticket: h.ticket(), waitMilliseconds: 0, now: h.now)
        if case .success(.granted(let lease)) = unpark {
            #expect(lease.request.poolLimits == ["build": 2])
        } else {
            Issue.record("\(unpark)")
        }
        #expect(pool(h, "build")?.inUse == 2)
        #expect(h.violations().isEmpty)
    }

    @Test func aDrainingLeaseKeepsItsUnitUntilItsGroupIsGone() {
        let alive = Mutex<Bool>(true)
        var h = Harness { $0.pools = [PoolConfig(name: "gpu", limit: 1)] }
        h.broker.processGroupAlive = { _ in alive.withLock { $0 } }
        let lease = h.acquire(pools: ["gpu"], pgid: 700).lease!
        #expect(h.acquire(pools: ["gpu"], wait: 60_000, client: 2).isQueued)
        _ = h.effects()
        _ = h.broker.decideRelease(lease.token, now: h.now)
        #expect(h.grantedTickets().isEmpty, "the group still runs: the unit stays taken")
        alive.withLock { $0 = false }
        h.broker.decideProcessGroupEnded(700, now: h.now)
        #expect(h.grantedTickets().count == 1)
        #expect(h.violations().isEmpty)
    }
}
