import Testing
@testable import TurnstileCore

/// What a dispatch costs (issue: "the dispatch scan on release must not be O(waiters) when
/// waiters cannot use the slot"): it checks the oldest waiter of each group of alike waiters
/// once, and groups stay right across a reload that changes waiters' model candidates.
@Suite("Dispatch cost")
struct DispatchCostTests {
    @Test(arguments: [FairnessPolicy.roundRobin, .priority, .proportional])
    func aSlotNoWaiterCanUseCostsOneCheckPerGroup(policy: FairnessPolicy) {
        var h = Harness {
            $0.limits.global = 50; $0.limits.fairness = policy
            $0.models = [ModelConfig(name: "p/full", concurrencyLimit: 1)]
        }
        h.broker.assertsInvariants = false // an O(waiters) check per step would dwarf what is measured
        let full = h.grant(model: "p/full")!
        for index in 0..<1000 {
            let project = index % 2 == 0 ? "alpha" : "beta"
            #expect(h.acquire(project: project, mode: .mention, model: "p/full", wait: 3_600_000,
                              holder: "\(project)-\(index / 2)", client: UInt64(10 + index)).isQueued)
        }
        _ = h.effects()
        let before = h.broker.metrics.dispatchChecksTotal
        for _ in 0..<10 {
            let other = h.grant()!
            h.release(other)
        }
        #expect(h.broker.metrics.dispatchChecksTotal - before == 20,
                 "ten releases, two groups (one per project): two checks each, not a thousand")
        #expect(h.effects().allSatisfy { if case .granted = $0 { false } else { true } })
        #expect(h.violations().isEmpty)

        h.release(full)
        let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease.holder } else { nil } }
        #expect(granted == ["alpha-0"], "the model's slot goes to the oldest waiter")
        #expect(h.violations().isEmpty)
    }

    @Test func waitersAreGroupedByEverythingTheyAskFor() {
        var h = Harness {
            $0.limits.global = 50
            $0.models = [ModelConfig(name: "p/full", concurrencyLimit: 1)]
        }
        _ = h.grant(model: "p/full")!
        _ = h.grant(workspace: "/repo")!
        // Two groups in one project: the full model's waiters and the locked workspace's.
        for _ in 0..<50 {
            #expect(h.acquire(project: "alpha", model: "p/full", wait: 3_600_000, client: 100).isQueued)
            #expect(h.acquire(project: "alpha", workspace: "/repo", wait: 3_600_000, client: 200).isQueued)
        }
        let before = h.broker.metrics.dispatchChecksTotal
        h.release(h.grant()!)
        #expect(h.broker.metrics.dispatchChecksTotal - before == 2)
        #expect(h.violations().isEmpty)
    }

    @Test func aReloadThatAddsAFallbackRegroupsWaitersOldestFirst() {
        var h = Harness {
            $0.limits.global = 50
            $0.providers = [ProviderConfig(name: "anthropic", models: ["claude-opus-4"])]
            $0.models = [ModelConfig(name: "claude-opus-4", concurrencyLimit: 1)]
        }
        let held = h.grant(model: "anthropic/claude-opus-4")!
        for label in ["w0", "w1", "w2"] {
            #expect(h.acquire(model: "anthropic/claude-opus-4", wait: 3_600_000, holder: label).isQueued)
        }
        _ = h.effects()
        var config = h.broker.config
        config.providers.append(ProviderConfig(name: "zai", models: ["glm-5"]))
        config.models.append(ModelConfig(name: "glm-5", concurrencyLimit: 2))
        h.broker.decideReload(config, now: h.now)
        let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease } else { nil } }
        #expect(granted.map(\.holder) == ["w0", "w1"], "the premium fallback now exists: the two oldest get it")
        #expect(granted.allSatisfy { $0.model?.description == "zai/glm-5" && $0.route == .capability })
        #expect(h.violations().isEmpty, "every waiter sits in the group of its new demand")
        h.release(held)
        let last = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease } else { nil } }
        #expect(last.map(\.holder) == ["w2"])
        #expect(last.first?.route == .primary)
    }
}
