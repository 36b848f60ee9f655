import Testing
@testable import TurnstileCore

/// Every broker operation returns its decision as one value: the reply and, in order, the
/// effects it caused; nothing stays behind for a caller to forget.
@Suite("Transitions")
struct TransitionTests {
    @Test func anAcquireGrantedAtOnceComesOutAsAGrantFromTheQueueDoes() throws {
        var h = Harness { $0.limits.global = 1 }
        let ticket = h.ticket()
        let transition = h.broker.acquire(AcquireRequest(AdmissionRequest(project: "alpha")), ticket: ticket, now: h.now)
        guard case .granted(let lease) = transition.reply else {
            Issue.record("not granted: \(transition.reply)")
            return
        }
        #expect(transition.effects == [.leaseGranted(lease), .granted(ticket, lease)])
        #expect(h.broker.effects.isEmpty)
    }

    @Test func aReleaseReturnsTheEndThenTheLeaseItGrantedAWaiterInOrder() throws {
        var h = Harness { $0.limits.global = 1 }
        let granted = h.grant()
        let first = try #require(granted)
        _ = h.effects()
        let waiter = h.ticket(2)
        let queued = h.broker.acquire(AcquireRequest(AdmissionRequest(), waitMilliseconds: 60_000), ticket: waiter, now: h.now)
        guard case .queued(let position, _) = queued.reply else {
            Issue.record("not queued: \(queued.reply)")
            return
        }
        #expect(position == 1 && queued.effects.isEmpty)

        let release = h.broker.release(first.token, now: h.now)
        let ended = try release.reply.get()
        #expect(ended.fence == first.fence)
        guard release.effects.count == 3, case .leaseEnded(let endedLease, .released) = release.effects[0],
              case .leaseGranted(let same) = release.effects[1], case .granted(let ticket, let granted) = release.effects[2] else {
            Issue.record("effects: \(release.effects)")
            return
        }
        #expect(endedLease.fence == first.fence && ticket == waiter && granted == same && granted.fence == first.fence + 1)
        #expect(h.broker.effects.isEmpty)
    }

    @Test func aTickReturnsExpiriesAndTimeoutsAsEffects() throws {
        var h = Harness { $0.limits.global = 1 }
        let granted = h.grant(ttl: 1000)
        let lease = try #require(granted)
        let waiter = h.ticket(2)
        _ = h.broker.acquire(AcquireRequest(AdmissionRequest(project: "beta"), waitMilliseconds: 500), ticket: waiter, now: h.now)
        h.now = h.now.adding(milliseconds: 600)
        let timedOut = h.broker.tick(now: h.now)
        #expect(timedOut.effects.contains { if case .failed(waiter, .timeout) = $0 { true } else { false } })
        h.now = h.now.adding(milliseconds: 500)
        let expired = h.broker.tick(now: h.now)
        #expect(expired.effects.contains { if case .leaseEnded(let ended, .expired) = $0 { ended.fence == lease.fence } else { false } })
    }
}
