import Testing
@testable import TurnstileCore

/// README, "Waiting and fairness"; protocol/PROTOCOL.md §7: each policy's grant order, aging, the proportional share and
/// its escape, and no head-of-line blocking.
@Suite("Fairness policies")
struct FairnessTests {
    /// Queues `requests` behind one held permit, then releases one grant at a time and returns
    /// the holders in the order they were granted.
    static func grantOrder(_ h: inout Harness, _ requests: [(label: String, mode: Mode, project: String, priority: Int)],
                           between: UInt64 = 0) -> [String] {
        var current = h.grant(project: "holder")!
        for request in requests {
            let outcome = h.acquire(project: request.project, mode: request.mode, priority: request.priority,
                                    wait: 3_600_000, holder: request.label)
            #expect(outcome.isQueued)
            if between > 0 { h.advance(between) }
        }
        _ = h.effects()
        var order: [String] = []
        for _ in requests {
            h.release(current)
            let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease } else { nil } }
            #expect(granted.count == 1)
            guard let next = granted.first else { break }
            order.append(next.holder ?? "?")
            current = next
            #expect(h.violations().isEmpty)
        }
        return order
    }

    @Test func roundRobinRotatesModesThenProjectsFIFOWithin() {
        var h = Harness { $0.limits.global = 1 }
        let order = Self.grantOrder(&h, [
            ("a1", .time, "A", 0), ("a2", .time, "A", 0), ("b1", .time, "B", 0), ("i1", .issue, "A", 0),
            ("m1", .mention, "C", 0), ("d1", .any, "D", 0), ("b2", .time, "B", 0),
        ])
        #expect(order == ["a1", "i1", "m1", "d1", "b1", "a2", "b2"])
    }

    @Test func roundRobinProjectCursorSurvivesProjectsEmptying() {
        var h = Harness { $0.limits.global = 1 }
        let order = Self.grantOrder(&h, [
            ("a1", .issue, "A", 0), ("b1", .issue, "B", 0), ("c1", .issue, "C", 0),
            ("a2", .issue, "A", 0), ("c2", .issue, "C", 0), ("c3", .issue, "C", 0),
        ])
        #expect(order == ["a1", "b1", "c1", "a2", "c2", "c3"])
    }

    @Test func priorityHighestFirstFIFOAmongEquals() {
        var h = Harness { $0.limits.global = 1; $0.limits.fairness = .priority; $0.limits.priorityAgingMilliseconds = 0 }
        let order = Self.grantOrder(&h, [
            ("low", .time, "A", 0), ("high1", .issue, "B", 5), ("high2", .any, "C", 5), ("mid", .time, "A", 1),
            ("neg", .mention, "D", -3),
        ])
        #expect(order == ["high1", "high2", "mid", "low", "neg"])
    }

    @Test func priorityAgingLetsAnOldLowPriorityWaiterThrough() {
        var h = Harness { $0.limits.global = 1; $0.limits.fairness = .priority; $0.limits.priorityAgingMilliseconds = 1000 }
        // "old" (priority 0) waits 3 s before "new" (priority 2) arrives; 3 s later old is at 0 + 6 and new
        // at 2 + 3, so old goes first.
        let order = Self.grantOrder(&h, [("old", .time, "A", 0), ("new", .time, "B", 2)], between: 3000)
        #expect(order.first == "old")
        var fresh = Harness { $0.limits.global = 1; $0.limits.fairness = .priority; $0.limits.priorityAgingMilliseconds = 1000 }
        let without = Self.grantOrder(&fresh, [("old", .time, "A", 0), ("new", .time, "B", 2)], between: 1000)
        #expect(without.first == "new", "with 1 s between them, old is at 0 + 2 and new at 2 + 1")
    }

    @Test func proportionalSharesAndTheirEscape() {
        var h = Harness { $0.limits.global = 6; $0.limits.time = 4; $0.limits.issue = 2; $0.limits.fairness = .proportional }
        #expect(h.broker.fairShare(.time) == 4)
        #expect(h.broker.fairShare(.issue) == 2)
        #expect(h.broker.fairShare(.mention) == nil)
        _ = h.grant(mode: .issue)!
        _ = h.grant(mode: .issue)!
        #expect(h.acquire(mode: .issue).refusal?.reason == .mode, "issue quota 2 = share 2: mode comes first")

        var escape = Harness { $0.limits.global = 1; $0.limits.time = 1; $0.limits.issue = 5; $0.limits.fairness = .proportional }
        #expect(escape.broker.fairShare(.time) == 0)
        #expect(escape.grant(mode: .time) != nil, "a share of 0 never refuses (the seed's escape)")
    }

    @Test func proportionalGrantsTheModeFurthestBelowItsShare() {
        var h = Harness { $0.limits.global = 6; $0.limits.time = 4; $0.limits.issue = 2; $0.limits.fairness = .proportional }
        // Hold: time 2 (2/4), issue 1 (1/2), any 3 (3/6): every ratio 0.5, global full.
        let t1 = h.grant(mode: .time)!
        _ = h.grant(mode: .time)!
        let i1 = h.grant(mode: .issue)!
        let anyLeases = (0..<3).map { _ in h.grant(mode: .any)! }
        #expect(h.acquire(mode: .time, wait: 60_000, holder: "t").isQueued)
        #expect(h.acquire(mode: .any, wait: 60_000, holder: "a").isQueued)
        #expect(h.acquire(mode: .issue, wait: 60_000, holder: "i").isQueued)
        _ = h.effects()
        func next() -> String? {
            h.effects().compactMap { if case .granted(_, let lease) = $0 { lease.holder } else { nil } }.first
        }
        // Releasing an issue lease: issue 0/2 = 0 is furthest below its share.
        h.release(i1)
        #expect(next() == "i")
        // Releasing a time lease: time 1/4 = 0.25 < issue 1/2 = any 3/6.
        h.release(t1)
        #expect(next() == "t")
        // Releasing an any lease: any 2/6 = 0.33 < time 2/4.
        h.release(anyLeases[0])
        #expect(next() == "a")
        #expect(h.violations().isEmpty)
    }

    @Test func proportionalTiesGoFIFO() {
        var h = Harness { $0.limits.global = 4; $0.limits.time = 2; $0.limits.issue = 2; $0.limits.fairness = .proportional }
        let hold = (0..<4).map { _ in h.grant(mode: .mention)! }
        #expect(h.acquire(mode: .issue, wait: 60_000, holder: "first").isQueued)
        #expect(h.acquire(mode: .time, wait: 60_000, holder: "second").isQueued)
        _ = h.effects()
        h.release(hold[0])
        let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease.holder } else { nil } }
        #expect(granted == ["first"], "both at 0 / 2: arrival order decides")
    }

    @Test(arguments: [FairnessPolicy.roundRobin, .priority, .proportional])
    func noHeadOfLineBlocking(policy: FairnessPolicy) {
        var h = Harness {
            $0.limits.global = 3; $0.limits.fairness = policy
            $0.projects = [ProjectConfig(name: "capped", max: 1)]
            $0.models = [ModelConfig(name: "p/full", concurrencyLimit: 1)]
        }
        let parked = h.grant(workspace: "/locked")!
        _ = h.broker.decidePark(parked.token, now: h.now)
        _ = h.grant(project: "capped")!
        _ = h.grant(model: "p/full")!
        let filler = h.grant()!
        // Behind three waiters blocked for their own reasons waits one that fits anywhere.
        #expect(h.acquire(workspace: "/locked", wait: 60_000, holder: "w").isQueued)
        #expect(h.acquire(project: "capped", wait: 60_000, holder: "p").isQueued)
        #expect(h.acquire(model: "p/full", wait: 60_000, holder: "m").isQueued)
        #expect(h.acquire(wait: 60_000, holder: "free").isQueued)
        _ = h.effects()
        h.release(filler)
        let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease.holder } else { nil } }
        #expect(granted == ["free"])
        #expect(h.violations().isEmpty)
    }
}
