import Synchronization
import Testing
@testable import TurnstileCore

/// A permit is free only when its work is gone (protocol/PROTOCOL.md §10.10): a lease with a
/// `pgid` that ends while its group runs keeps its slot, whatever ended it, until the daemon
/// reports the group gone. The group's liveness is an injected input, as time is.
@Suite("Process-group leases drain before their slot is free")
struct DrainingTests {
    /// Groups the fake kernel says are alive.
    final class Groups: Sendable {
        let alive = Mutex<Set<Int32>>([])
        func set(_ pgid: Int32, alive: Bool) { _ = self.alive.withLock { alive ? $0.insert(pgid).inserted : ($0.remove(pgid) != nil) } }
    }

    private func harness(global: Int = 1, groups: Groups) -> Harness {
        var h = Harness { $0.limits.global = global }
        h.broker.processGroupAlive = { pgid in groups.alive.withLock { $0.contains(pgid) } }
        return h
    }

    private func grantInGroup(_ h: inout Harness, _ pgid: Int32, workspace: String? = nil, client: UInt64 = 1) -> Lease {
        let lease = h.grant(workspace: workspace, client: client)!
        _ = h.broker.decideAttach(lease.token, client: ClientID(client), pgid: pgid, now: h.now)
        return h.broker.lease(fence: lease.fence)!
    }

    @Test(arguments: ["release", "disconnect", "expire", "revoke"])
    func anEndWhileTheGroupRunsKeepsTheSlot(end: String) {
        let groups = Groups()
        var h = harness(groups: groups)
        let lease = grantInGroup(&h, 700, workspace: "/w")
        groups.set(700, alive: true)
        let waiting = h.acquire(workspace: "/w", wait: 600_000, client: 2)
        #expect(waiting.isQueued)
        _ = h.effects()
        switch end {
        case "release": _ = h.broker.decideRelease(lease.token, exit: .code(0), now: h.now)
        case "disconnect": h.broker.decideDisconnect(ClientID(1), now: h.now)
        case "expire": h.advance(lease.ttlMilliseconds)
        default: h.broker.decideRevoke(fence: lease.fence, now: h.now)
        }
        let ending = h.effects()
        #expect(ending.contains { if case .leaseDraining(let l) = $0 { l.fence == lease.fence } else { false } })
        #expect(!ending.contains { if case .granted = $0 { true } else { false } }, "no one gets the slot while the group runs")
        #expect(h.broker.status(now: h.now).global.inUse == 1)
        let shown = h.broker.status(now: h.now).leases.first
        #expect(shown?.draining != nil && shown?.pgid == 700)
        #expect(h.broker.lease(lease.token) == nil, "the token is gone: heartbeats and releases answer not_found")
        #expect(h.violations().isEmpty)

        h.advance(5_000)
        groups.set(700, alive: false)
        h.broker.decideProcessGroupEnded(700, now: h.now)
        let freed = h.effects()
        #expect(freed.contains(.leaseEnded(h.lastEnded(freed)!, .drained)))
        #expect(freed.contains { if case .granted = $0 { true } else { false } }, "the waiter gets the slot at once")
        #expect(h.broker.metrics.drainedTotal == 1)
        #expect(h.violations().isEmpty)
    }

    @Test func aGroupAlreadyGoneEndsTheLeaseAsUsual() {
        let groups = Groups()
        var h = harness(groups: groups)
        let lease = grantInGroup(&h, 701)
        _ = h.effects()
        _ = h.broker.decideRelease(lease.token, exit: .signal(9), now: h.now)
        let effects = h.effects()
        #expect(effects.contains { if case .leaseEnded(_, .released) = $0 { true } else { false } })
        #expect(h.broker.metrics.finishedFailureTotal == 1 && h.broker.metrics.releasedTotal == 1)
        #expect(h.grant() != nil)
    }

    @Test func finishesAndEachReclaimAreCountedApart() {
        var h = Harness { $0.limits.global = 8 }
        let a = h.grant()!, b = h.grant()!, c = h.grant(client: 2)!, d = h.grant(pid: 42)!
        _ = h.broker.decideRelease(a.token, exit: .code(0), now: h.now)
        _ = h.broker.decideRelease(b.token, exit: .code(3), now: h.now)
        h.broker.decideDisconnect(ClientID(2), now: h.now)
        h.broker.decideProcessExited(42, now: h.now)
        _ = c; _ = d
        let metrics = h.broker.metrics
        #expect(metrics.finishedSuccessTotal == 1 && metrics.finishedFailureTotal == 1 && metrics.releasedTotal == 2)
        #expect(metrics.disconnectedTotal == 1 && metrics.processExitedTotal == 1 && metrics.reclaimedTotal == 2)
    }

    @Test func aDrainingLeaseIsSavedAndRestoredHoldingItsSlot() {
        let groups = Groups()
        var h = harness(groups: groups)
        let lease = grantInGroup(&h, 702, workspace: "/w")
        groups.set(702, alive: true)
        _ = h.broker.decideRelease(lease.token, now: h.now)
        let saved = h.broker.snapshot(now: h.now, wall: h.wall)
        #expect(saved.leases.first?.draining == .released && saved.leases.first?.pgid == 702)

        var restarted = harness(groups: groups)
        restarted.broker.decideRestore(saved, now: restarted.now, wall: restarted.wall)
        #expect(restarted.broker.drainingGroups == [702])
        #expect(restarted.acquire(workspace: "/w").refusal?.reason == .workspaceLock)
        #expect(restarted.violations().isEmpty)
        restarted.broker.decideProcessGroupEnded(702, now: restarted.now)
        #expect(restarted.grant(workspace: "/w") != nil)
        #expect(restarted.broker.fenceHighWater >= lease.fence)
    }

    /// The daemon signals a draining lease's group (`kill(-pgid, …)`): a saved pgid of 1 would
    /// be every process it may signal, 0 its own group, a negative one a single pid (and
    /// Int32.min traps on negation). A damaged state file is not obeyed.
    @Test(arguments: [Int32(1), 0, -1, Int32.min])
    func aSavedLeaseWithAGroupNoPeerCouldBindIsDropped(pgid: Int32) {
        let groups = Groups()
        var h = harness(global: 2, groups: groups)
        let lease = grantInGroup(&h, 704)
        groups.set(704, alive: true)
        _ = h.broker.decideRelease(lease.token, now: h.now)
        _ = grantInGroup(&h, 705)
        var saved = h.broker.snapshot(now: h.now, wall: h.wall)
        #expect(saved.leases.count == 2)
        for index in saved.leases.indices { saved.leases[index].pgid = pgid }

        var restarted = harness(global: 2, groups: groups)
        let rejected = restarted.broker.decideRestore(saved, now: restarted.now, wall: restarted.wall)
        #expect(rejected.count == 2)
        #expect(restarted.broker.drainingGroups.isEmpty)
        #expect(restarted.violations().isEmpty)
    }

    @Test func anotherGroupEndingFreesNothing() {
        let groups = Groups()
        var h = harness(groups: groups)
        let lease = grantInGroup(&h, 703)
        groups.set(703, alive: true)
        _ = h.broker.decideRelease(lease.token, now: h.now)
        h.broker.decideProcessGroupEnded(999, now: h.now)
        #expect(h.broker.status(now: h.now).global.inUse == 1)
    }
}

extension Harness {
    /// The lease of the last `leaseEnded` among `effects`.
    func lastEnded(_ effects: [Effect]) -> Lease? {
        effects.compactMap { if case .leaseEnded(let lease, _) = $0 { lease } else { nil } }.last
    }
}
