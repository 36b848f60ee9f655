import Testing
@testable import TurnstileCore

/// README, "Models and fallback"; protocol/PROTOCOL.md §8.2: the model limiter's fallback order, subscription-limited models and
/// throttled providers, and a waiter granted whichever candidate frees first.
@Suite("Model limiter and fallback")
struct ModelFallbackTests {
    static func fleet(_ config: inout TurnstileConfig) {
        config.limits.global = 50
        config.providers = [
            ProviderConfig(name: "anthropic", models: ["claude-opus-4", "claude-sonnet-4", "claude-haiku-4-5"]),
            ProviderConfig(name: "zai", models: ["glm-5", "glm-4.7", "glm-4.7-flash"]),
            ProviderConfig(name: "deepseek", models: ["deepseek-reasoner"]),
            ProviderConfig(name: "claude-cli", kind: .cli, models: ["opus"]),
        ]
        config.models = [ModelConfig(name: "claude-opus-4", concurrencyLimit: 1),
                         ModelConfig(name: "glm-5", concurrencyLimit: 1),
                         ModelConfig(name: "claude-sonnet-4", concurrencyLimit: 1),
                         ModelConfig(name: "glm-4.7", concurrencyLimit: 1),
                         ModelConfig(name: "opus", concurrencyLimit: 1)]
    }

    @Test func primaryWhenFree() {
        var h = Harness(Self.fleet)
        let lease = h.grant(model: "anthropic/claude-opus-4")!
        #expect(lease.model == ModelKey(provider: "anthropic", model: "claude-opus-4"))
        #expect(lease.route == .primary)
        let none = h.grant()!
        #expect(none.model == nil && none.route == nil, "route is null without a model")
    }

    @Test func chainBeforeCapability() {
        var h = Harness(Self.fleet)
        _ = h.grant(model: "anthropic/claude-opus-4")
        let lease = h.grant(model: "anthropic/claude-opus-4", fallback: ["zai/glm-4.7-flash", "broken"])!
        #expect(lease.model?.description == "zai/glm-4.7-flash")
        #expect(lease.route == .chain)
    }

    @Test func capabilitySameTierFirstThenCheaperInConfigOrder() {
        var h = Harness(Self.fleet)
        _ = h.grant(model: "anthropic/claude-opus-4")
        let sameTier = h.grant(model: "anthropic/claude-opus-4")!
        #expect(sameTier.model?.description == "zai/glm-5", "the other premium API model")
        #expect(sameTier.route == .capability)
        let cheaper = h.grant(model: "anthropic/claude-opus-4")!
        #expect(cheaper.model?.description == "anthropic/claude-sonnet-4", "then standard, in provider order")
        let next = h.grant(model: "anthropic/claude-opus-4")!
        #expect(next.model?.description == "zai/glm-4.7")
        let cli = h.grant(model: "anthropic/claude-opus-4")!
        #expect(cli.model?.description == "claude-cli/opus")
        #expect(cli.route == .cli)
        let refusal = h.acquire(model: "anthropic/claude-opus-4").refusal
        #expect(refusal?.reason == .model)
        #expect(refusal?.limit == 1 && refusal?.inUse == 1, "the primary's pool is what is reported")
    }

    @Test func capabilityKeepsToolSupport() {
        var h = Harness {
            Self.fleet(&$0)
            $0.models.append(ModelConfig(name: "deepseek-reasoner", concurrencyLimit: 4, tier: .standard))
        }
        // claude-sonnet-4 (standard, tools) is full: deepseek-reasoner is standard but has no tools.
        _ = h.grant(model: "anthropic/claude-sonnet-4")
        let lease = h.grant(model: "anthropic/claude-sonnet-4")!
        #expect(lease.model?.description == "zai/glm-4.7")
        _ = lease
        let next = h.grant(model: "anthropic/claude-sonnet-4")!
        #expect(next.model?.description != "deepseek/deepseek-reasoner", "a tool user never falls back to a model without tools")
        #expect(next.model?.description == "anthropic/claude-haiku-4-5", "then one tier cheaper")
    }

    @Test func aModelWithoutToolsMayFallBackToOneWithTools() {
        var h = Harness {
            Self.fleet(&$0)
            $0.models.append(ModelConfig(name: "deepseek-reasoner", concurrencyLimit: 1, tier: .standard))
        }
        _ = h.grant(model: "deepseek/deepseek-reasoner")
        #expect(h.grant(model: "deepseek/deepseek-reasoner")?.model?.description == "anthropic/claude-sonnet-4")
    }

    @Test func subscriptionLimitedModelCountsAsFull() {
        var h = Harness(Self.fleet)
        h.broker.decideRecord(CompletionEvent(model: "anthropic/claude-opus-4", completedAt: h.wall, latencyMilliseconds: 10,
                                        success: false, error: "weekly session limit reached"), now: h.now)
        let lease = h.grant(model: "anthropic/claude-opus-4")!
        #expect(lease.model?.description == "zai/glm-5", "flagged primary is skipped")
        _ = h.grant(model: "anthropic/claude-opus-4")
        let status = h.broker.status(now: h.now)
        #expect(status.models.first { $0.model.description == "anthropic/claude-opus-4" }?.limitedForMilliseconds == 3_600_000)
    }

    @Test func aBareFlagCoversEveryProviderAndAPoolFlagOnlyItsPool() {
        var h = Harness {
            $0.providers = [ProviderConfig(name: "a", models: ["m"]), ProviderConfig(name: "b", models: ["m"])]
        }
        h.broker.decideRecord(CompletionEvent(model: "a/m", completedAt: h.wall, latencyMilliseconds: 1, success: false,
                                        status: 429), now: h.now)
        #expect(h.grant(model: "a/m")?.model?.description == "b/m")
        h.broker.decideRecord(CompletionEvent(model: "m", completedAt: h.wall, latencyMilliseconds: 1, success: false,
                                        error: "usage cap"), now: h.now)
        let refusal = h.acquire(model: "b/m").refusal
        #expect(refusal?.reason == .model)
        #expect(refusal?.retryAfterMilliseconds == 3_600_000)
    }

    @Test func flagEndWakesWaiters() {
        var h = Harness { $0.telemetry.subscriptionLimitTTLSeconds = 2 }
        h.broker.decideRecord(CompletionEvent(model: "solo/m", completedAt: h.wall, latencyMilliseconds: 1, success: false,
                                        error: "out of quota"), now: h.now)
        #expect(h.acquire(model: "solo/m", wait: 60_000).isQueued)
        #expect(h.broker.nextDeadline() == h.now.adding(milliseconds: 2000))
        h.advance(1999)
        #expect(h.grantedTickets().isEmpty)
        h.advance(1)
        #expect(h.grantedTickets().count == 1)
    }

    @Test func throttledPrimaryIsSoftAndFallsBack() {
        var h = Harness(Self.fleet)
        h.broker.decideThrottle(provider: "anthropic", tenant: "local", retryAfterMilliseconds: 30_000, now: h.now)
        let lease = h.grant(model: "anthropic/claude-opus-4")!
        #expect(lease.model?.description == "zai/glm-5", "fallback skips the throttled provider's models")
        #expect(h.grant(model: "anthropic/claude-opus-4", tenant: "other")?.model?.description == "anthropic/claude-opus-4",
                "other tenants are not affected")
    }

    @Test func onlyThrottlingBlocksThenTheAnswerIsRateLimit() {
        var h = Harness { $0.providers = [ProviderConfig(name: "a", models: ["m"])] }
        h.broker.decideThrottle(provider: "a", tenant: "local", retryAfterMilliseconds: 7000, now: h.now)
        let refusal = h.acquire(model: "a/m").refusal
        #expect(refusal?.reason == .rateLimit)
        #expect(refusal?.retryAfterMilliseconds == 7000)
    }

    @Test func aWaiterGetsWhicheverCandidateFreesFirst() {
        var h = Harness {
            $0.models = [ModelConfig(name: "a/x", concurrencyLimit: 1), ModelConfig(name: "b/y", concurrencyLimit: 1)]
        }
        let x = h.grant(model: "a/x")!
        let y = h.grant(model: "b/y")!
        #expect(h.acquire(model: "a/x", fallback: ["b/y"], wait: 60_000).isQueued)
        h.release(y)
        let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease } else { nil } }
        #expect(granted.map { $0.model?.description } == ["b/y"])
        #expect(granted.first?.route == .chain)
        _ = x
    }

    @Test func whenSeveralFreeAtOnceThePrimaryIsPreferred() {
        var h = Harness {
            $0.limits.global = 2
            $0.models = [ModelConfig(name: "a/x", concurrencyLimit: 1), ModelConfig(name: "b/y", concurrencyLimit: 1)]
        }
        _ = h.grant(model: "a/x")!
        _ = h.grant(model: "b/y")!
        #expect(h.acquire(model: "a/x", fallback: ["b/y"], wait: 60_000).isQueued)
        var config = h.broker.config
        config.limits.global = 3
        config.models = [ModelConfig(name: "a/x", concurrencyLimit: 2), ModelConfig(name: "b/y", concurrencyLimit: 2)]
        h.broker.decideReload(config, now: h.now)
        let granted = h.effects().compactMap { if case .granted(_, let lease) = $0 { lease } else { nil } }
        #expect(granted.map { $0.model?.description } == ["a/x"])
        #expect(granted.first?.route == .primary)
    }
}
