import Testing
@testable import TurnstileCore

/// Project names are compared byte for byte, as the pause directory's file names are: the
/// NFC and NFD spellings of one word are two projects everywhere in the broker.
@Suite("Project names are byte-exact")
struct ExactNameTests {
    let composed = "caf\u{E9}"
    let decomposed = "cafe\u{301}"

    @Test func swiftStringsMergeTheSpellingsButExactNamesDoNot() {
        #expect(composed == decomposed, "the reason for the type")
        #expect(ExactName(composed) != ExactName(decomposed))
        #expect(Set([ExactName(composed), ExactName(decomposed)]).count == 2)
        #expect(ExactName(composed) == ExactName(String(decoding: Array(composed.utf8), as: UTF8.self)))
        #expect(ExactName("a") < ExactName("b") && ExactName(decomposed) < ExactName(composed))
    }

    @Test func pausingOneSpellingLeavesTheOtherFree() {
        var h = Harness()
        _ = h.broker.decidePause(composed, now: h.now)
        #expect(h.acquire(project: composed).refusal?.reason == .paused)
        #expect(h.acquire(project: decomposed).lease != nil)
        _ = h.broker.decideResume(decomposed, now: h.now)
        #expect(h.acquire(project: composed).refusal?.reason == .paused, "resuming the other spelling changes nothing")
    }

    @Test func flagFilesOfBothSpellingsPauseBoth() {
        var h = Harness()
        h.broker.decideSyncPaused([composed, decomposed], now: h.now)
        #expect(h.broker.paused.count == 2)
        h.broker.decideSyncPaused([decomposed], now: h.now)
        #expect(h.acquire(project: composed).lease != nil)
        #expect(h.acquire(project: decomposed).refusal?.reason == .paused)
    }

    @Test func capsCountsAndStatusKeepTheSpellingsApart() {
        var h = Harness { $0.projects = [ProjectConfig(name: "caf\u{E9}", max: 1)] }
        #expect(h.grant(project: composed) != nil)
        #expect(h.acquire(project: composed).refusal?.reason == .project)
        #expect(h.grant(project: decomposed) != nil, "the cap is the composed spelling's only")
        #expect(h.grant(project: decomposed) != nil)
        let projects = h.broker.status(now: h.now).projects
        #expect(projects.map { Array($0.name.utf8) } == [Array(composed.utf8), Array(decomposed.utf8)])
        #expect(projects.map(\.inUse) == [1, 2])
        #expect(h.violations().isEmpty)
    }

    @Test func theBreakerCountsEachSpellingOnItsOwn() {
        var h = Harness()
        _ = h.broker.decideReport(project: composed, agent: "project-meta", success: false, now: h.now)
        _ = h.broker.decideReport(project: composed, agent: "project-meta", success: false, now: h.now)
        #expect(h.broker.breaker.count(decomposed) == 0)
        #expect(h.broker.breaker.count(composed) == 2)
    }

    @Test func waitersOfEachSpellingQueueApart() {
        var h = Harness {
            $0.limits.global = 1
            $0.projects = [ProjectConfig(name: "caf\u{E9}", max: 0)]
        }
        #expect(h.acquire(project: composed, wait: 10_000).isQueued)
        let holder = h.grant(project: "other")!
        #expect(h.acquire(project: decomposed, wait: 10_000).isQueued)
        _ = h.effects()
        h.release(holder)
        #expect(h.grantedTickets().count == 1, "the decomposed waiter, not blocked by the composed cap")
        #expect(h.violations().isEmpty)
    }

    @Test func workspacesTenantsProvidersModelsAndPoolsAreByteExactToo() {
        var h = Harness {
            $0.providers = [ProviderConfig(name: "p", models: [composed, decomposed])]
            $0.models = [ModelConfig(name: "p/" + composed, concurrencyLimit: 1), ModelConfig(name: "p/" + decomposed, concurrencyLimit: 1)]
        }
        #expect(h.grant(workspace: "/w/" + composed) != nil)
        #expect(h.grant(workspace: "/w/" + decomposed) != nil, "two directories on disk, two locks")
        h.broker.decideThrottle(provider: "p", tenant: composed, retryAfterMilliseconds: 60_000, now: h.now)
        #expect(h.acquire(providers: ["p"], tenant: decomposed).lease != nil, "another tenant's throttle")
        #expect(h.grant(model: "p/" + composed)?.model?.model == composed)
        #expect(h.grant(model: "p/" + decomposed)?.model?.model == decomposed, "another model's pool")
        #expect(h.violations().isEmpty)
    }
}
