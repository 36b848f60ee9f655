import Testing
@testable import TurnstileCore

/// protocol/PROTOCOL.md §10 and §13: a lease's life from grant to end, and what a restart keeps.
@Suite("Lease lifecycle")
struct LeaseLifecycleTests {
    @Test func tokensAre128BitHexAndRoundTrip() {
        var h = Harness()
        let lease = h.grant()!
        #expect(lease.token.hex.count == 32)
        #expect(lease.token.hex.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(LeaseToken(hex: lease.token.hex) == lease.token)
        #expect(LeaseToken(hex: lease.token.hex.uppercased()) == lease.token)
        #expect(LeaseToken(hex: "xyz") == nil)
        #expect(LeaseToken(hex: String(repeating: "g", count: 32)) == nil)
        #expect("\(lease.token)" == "lease(…)", "a token printed by accident is redacted")
        let other = h.grant()!
        #expect(other.token != lease.token)
    }

    @Test func expiryIsExactlyAtTheDeadline() {
        var h = Harness()
        let lease = h.grant(ttl: 1000)!
        #expect(lease.deadline == h.now.adding(milliseconds: 1000))
        #expect(h.broker.nextDeadline() == lease.deadline)
        h.advance(999)
        #expect(h.broker.lease(lease.token) != nil)
        h.advance(1)
        #expect(h.broker.lease(lease.token) == nil)
        let ended = h.effects().compactMap { if case .leaseEnded(let l, let cause) = $0 { (l.fence, cause) } else { nil } }
        #expect(ended.count == 1 && ended[0].0 == lease.fence && ended[0].1 == .expired)
        #expect(h.broker.metrics.expiredTotal == 1)
    }

    @Test func heartbeatExtendsAndALateOneFindsNothing() {
        var h = Harness()
        let lease = h.grant(ttl: 1000)!
        h.advance(900)
        let beat = try? h.broker.decideHeartbeat(lease.token, now: h.now).get()
        #expect(beat?.deadline == h.now.adding(milliseconds: 1000))
        h.advance(900)
        #expect(h.broker.lease(lease.token) != nil, "alive 1800 ms after grant thanks to the heartbeat")
        // A heartbeat arriving at the deadline, before the timer fired, is too late.
        h.now = h.now.adding(milliseconds: 100)
        #expect(h.broker.decideHeartbeat(lease.token, now: h.now) == .failure(.notFound))
        #expect(h.broker.leaseCount == 0)
    }

    @Test func fencesStrictlyIncreaseAndContinueAfterRestart() {
        var h = Harness()
        var fences: [UInt64] = []
        for _ in 0..<5 {
            let lease = h.grant()!
            fences.append(lease.fence)
            h.release(lease)
        }
        #expect(fences == fences.sorted() && Set(fences).count == 5)
        let snapshot = h.broker.snapshot(now: h.now, wall: h.wall)
        var restarted = Harness(seed: 2)
        restarted.broker.decideRestore(snapshot, fenceFloor: 1000, now: restarted.now, wall: restarted.wall)
        #expect(restarted.grant()!.fence == 1001, "continues above the durable reservation")
        var plain = Harness(seed: 3)
        plain.broker.decideRestore(snapshot, now: plain.now, wall: plain.wall)
        #expect(plain.grant()!.fence == fences.last! + 1)
    }

    @Test func disconnectReleasesBoundLeasesKeepsDetachedOnesAndDropsWaiters() {
        var h = Harness { $0.limits.global = 3 }
        let bound = h.grant(client: 7)!
        let detached = h.grant(detach: true, client: 7)!
        _ = h.grant(client: 8)!
        #expect(h.acquire(wait: 60_000, client: 7).isQueued)
        _ = h.effects()
        h.broker.decideDisconnect(ClientID(7), now: h.now)
        #expect(h.broker.lease(bound.token) == nil)
        #expect(h.broker.lease(detached.token) != nil)
        #expect(h.broker.lease(detached.token)?.client == nil, "nobody to send its events to")
        #expect(h.broker.waiterCount == 0, "a waiter whose connection closed is dropped")
        let effects = h.effects()
        #expect(effects.contains { if case .leaseEnded(let l, .disconnected) = $0 { l.fence == bound.fence } else { false } })
        #expect(!effects.contains { if case .granted = $0 { true } else { false } }, "nobody left to grant")
        #expect(h.broker.metrics.reclaimedTotal == 1)
    }

    @Test func processExitReleasesItsLeasesAndTheWatchFollowsThem() {
        var h = Harness()
        let a = h.grant(pid: 4242)!
        let b = h.grant(detach: true, pid: 4242)!
        let other = h.grant(pid: 99)!
        let effects = h.effects()
        #expect(effects.filter { $0 == .watchProcess(4242) }.count == 1, "one watch per process")
        #expect(effects.contains(.watchProcess(99)))
        h.broker.decideProcessExited(4242, now: h.now)
        #expect(h.broker.lease(a.token) == nil && h.broker.lease(b.token) == nil, "detached leases too")
        #expect(h.broker.lease(other.token) != nil)
        #expect(h.effects().contains(.unwatchProcess(4242)))
        h.release(other)
        #expect(h.effects().contains(.unwatchProcess(99)))
        #expect(h.broker.watchedPids.isEmpty)
    }

    @Test func attachBindsToANewConnectionAndProcess() throws {
        var h = Harness()
        let lease = h.grant(detach: true, client: 1)!
        let attached = try h.broker.decideAttach(lease.token, client: ClientID(2), pid: 555, now: h.now).get()
        #expect(attached.bound && attached.client == ClientID(2) && attached.pid == 555)
        #expect(h.effects().contains(.watchProcess(555)))
        h.broker.decideDisconnect(ClientID(1), now: h.now)
        #expect(h.broker.lease(lease.token) != nil, "the old connection no longer holds it")
        h.broker.decideDisconnect(ClientID(2), now: h.now)
        #expect(h.broker.lease(lease.token) == nil, "closing the new one releases it")
    }

    @Test func parkFreesCapacityKeepsTheWorkspaceAndUnparkWaits() throws {
        var h = Harness { $0.limits.global = 1 }
        let lease = h.grant(workspace: "/repo")!
        _ = try h.broker.decidePark(lease.token, now: h.now).get()
        let other = h.grant()!
        #expect(h.broker.status(now: h.now).workspaces.first?.parked == true)
        let unpark = try h.broker.decideUnpark(lease.token, ticket: h.ticket(), waitMilliseconds: 60_000, now: h.now).get()
        #expect(unpark.isQueued)
        #expect(unpark.refusal?.reason == .global, "its own workspace lock does not block it")
        h.release(other)
        let granted = h.effects().compactMap { if case .granted(_, let l) = $0 { l } else { nil } }
        #expect(granted.count == 1)
        #expect(granted.first?.token == lease.token && granted.first?.fence == lease.fence, "same token and fence")
        #expect(granted.first?.parked == false)
        #expect(h.violations().isEmpty)
    }

    @Test func anUnparkWaiterLearnsItsLeaseIsGone() throws {
        var h = Harness { $0.limits.global = 1 }
        let lease = h.grant(ttl: 500)!
        _ = try h.broker.decidePark(lease.token, now: h.now).get()
        _ = h.grant()!
        let ticket = h.ticket()
        #expect(try h.broker.decideUnpark(lease.token, ticket: ticket, waitMilliseconds: 60_000, now: h.now).get().isQueued)
        h.advance(500)
        #expect(h.effects().contains(.failed(ticket, .leaseGone)))
        #expect(h.broker.waiterCount == 0)
    }

    @Test func revokeByTokenOrFence() {
        var h = Harness()
        let a = h.grant()!
        let b = h.grant()!
        let byToken = try? h.broker.decideRevoke(a.token, now: h.now).get()
        let byFence = h.broker.decideRevoke(fence: b.fence, now: h.now)
        let unknownFence = h.broker.decideRevoke(fence: 999, now: h.now)
        let again = h.broker.decideRevoke(a.token, now: h.now)
        #expect(byToken?.fence == a.fence)
        #expect(byFence?.token == b.token)
        #expect(unknownFence == nil)
        #expect(again == .failure(.notFound))
        let causes = h.effects().compactMap { if case .leaseEnded(_, let cause) = $0 { cause } else { nil } }
        #expect(causes == [.revoked, .revoked])
    }

    @Test func cancelTimeoutAndShutdownAnswerWaiters() {
        var h = Harness { $0.limits.global = 1 }
        _ = h.grant()!
        _ = h.effects()
        let cancelled = h.ticket()
        let request = AcquireRequest(AdmissionRequest(), waitMilliseconds: 60_000)
        #expect(h.broker.decideAcquire(request, ticket: cancelled, now: h.now).isQueued)
        let first = h.broker.decideCancel(cancelled, now: h.now)
        let second = h.broker.decideCancel(cancelled, now: h.now)
        #expect(first && !second)
        #expect(h.effects() == [.failed(cancelled, .cancelled)])

        let timed = h.ticket()
        #expect(h.broker.decideAcquire(AcquireRequest(AdmissionRequest(), waitMilliseconds: 300), ticket: timed, now: h.now).isQueued)
        h.advance(299)
        #expect(h.effects().isEmpty)
        h.advance(1)
        guard case .failed(let t, .timeout(let refusal)) = h.effects().first else {
            Issue.record("no timeout")
            return
        }
        #expect(t == timed && refusal.reason == .global)

        let stopping = h.ticket()
        #expect(h.broker.decideAcquire(request, ticket: stopping, now: h.now).isQueued)
        h.broker.decideShutDown()
        #expect(h.effects() == [.failed(stopping, .shuttingDown)])
    }

    @Test func expiryWakesTheNextWaiter() {
        var h = Harness { $0.limits.global = 1 }
        _ = h.grant(ttl: 200)!
        #expect(h.acquire(wait: 60_000).isQueued)
        h.advance(200)
        #expect(h.grantedTickets().count == 1)
    }

    @Test func restoreGivesEveryLeaseAFreshTTLUnboundAndNeverOvergrants() {
        var h = Harness { $0.limits.global = 3 }
        let leases = [h.grant(ttl: 1000, client: 1)!, h.grant(ttl: 5000, detach: true, client: 1)!,
                      h.grant(workspace: "/w", ttl: 2000, pid: 321, client: 1)!]
        let snapshot = h.broker.snapshot(now: h.now, wall: h.wall)
        var after = Harness(seed: 9) { $0.limits.global = 2 }
        after.now = Instant(milliseconds: 50)
        let rejected = after.broker.decideRestore(snapshot, now: after.now, wall: after.wall)
        #expect(rejected.isEmpty)
        #expect(after.broker.leaseCount == 3, "restored even above the lowered limit")
        for lease in leases {
            let restored = after.broker.lease(lease.token)
            #expect(restored?.fence == lease.fence)
            #expect(restored?.deadline == after.now.adding(milliseconds: lease.ttlMilliseconds))
            #expect(restored?.bound == false && restored?.client == nil)
        }
        #expect(after.effects().contains(.watchProcess(321)), "the daemon re-watches pids")
        #expect(after.acquire().refusal?.reason == .global)
        #expect(after.acquire(workspace: "/w").refusal?.reason == .workspaceLock)
        after.advance(1000)
        #expect(after.acquire().refusal?.reason == .global, "3 - 1 expired = 2, still at the limit of 2")
        #expect(after.violations().isEmpty)
    }

    @Test func restoreRejectsCorruptRecords() {
        var h = Harness()
        let lease = h.grant()!
        var snapshot = h.broker.snapshot(now: h.now, wall: h.wall)
        var bad = snapshot.leases[0]
        bad.token = "not-hex"
        bad.fence = 77
        snapshot.leases.append(bad)
        snapshot.leases.append(snapshot.leases[0])
        var after = Harness(seed: 4)
        let rejected = after.broker.decideRestore(snapshot, now: after.now, wall: after.wall)
        #expect(rejected.count == 2)
        #expect(after.broker.lease(lease.token) != nil)
    }

    @Test func nextDeadlineSkipsStaleEntries() {
        var h = Harness()
        let short = h.grant(ttl: 100)!
        _ = h.grant(ttl: 5000)!
        h.release(short)
        #expect(h.broker.nextDeadline() == h.now.adding(milliseconds: 5000))
        let beat = h.grant(ttl: 1000)!
        h.advance(500)
        _ = h.broker.decideHeartbeat(beat.token, now: h.now)
        #expect(h.broker.nextDeadline() == h.now.adding(milliseconds: 1000))
    }

    @Test func heapsStayBoundedUnderChurn() {
        var h = Harness { $0.limits.global = 1 }
        for _ in 0..<20_000 {
            let lease = h.grant(ttl: 30_000)!
            h.release(lease)
        }
        #expect(h.broker.leaseDeadlines.count <= 1024 + 2, "released leases' deadline entries are compacted")
    }
}
