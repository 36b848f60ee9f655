import Testing
@testable import TurnstileCore

/// The seed's `project_control.rs` tests: pause flags and the `ProjectFailureCounter`
/// circuit breaker. The flag files themselves belong to the daemon (its tests create and
/// remove them); here the broker's paused set is fed as the daemon feeds it.
@Suite("Pause flags and the circuit breaker in the broker")
struct PauseAndBreakerTests {
    @Test func pauseFlagAbsentMeansNotPaused() {
        var h = Harness()
        h.broker.decideSyncPaused([], now: h.now)
        #expect(h.grant(project: "odilo") != nil)
    }

    @Test func pauseFlagPresentMeansPaused() {
        var h = Harness()
        h.broker.decideSyncPaused(["odilo"], now: h.now)
        #expect(h.acquire(project: "odilo").refusal?.reason == .paused)
    }

    @Test func pauseFlagNotSharedAcrossProjects() {
        var h = Harness()
        h.broker.decideSyncPaused(["odilo"], now: h.now)
        #expect(h.acquire(project: "odilo").refusal?.reason == .paused)
        #expect(h.grant(project: "digital-twins") != nil)
    }

    @Test func pauseFlagIgnoredForGlobalAgents() {
        var h = Harness()
        h.broker.decideSyncPaused([Names.globalProject], now: h.now)
        #expect(h.grant() != nil, "acquires without a project are never paused")
        #expect(h.grant(project: Names.globalProject) != nil)
        #expect(h.broker.decidePause(Names.globalProject, now: h.now)
                == .failure(.badRequest(field: "project", message: "__global__ cannot be paused")))
    }

    @Test func identifiesProjectMetaAgentByName() {
        #expect(CircuitBreaker.isProjectMetaAgent("project-meta"))
        #expect(CircuitBreaker.isProjectMetaAgent("project-meta-odilo"))
        #expect(!CircuitBreaker.isProjectMetaAgent("fleet-meta"))
        #expect(!CircuitBreaker.isProjectMetaAgent("meta-coordinator"))
        #expect(!CircuitBreaker.isProjectMetaAgent("developer"))
    }

    @Test func counterResetsOnSuccess() {
        var breaker = CircuitBreaker(threshold: 3)
        #expect(!breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        #expect(!breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        #expect(breaker.count("odilo") == 2)
        #expect(!breaker.report(project: "odilo", agent: "project-meta", success: true).tripped)
        #expect(breaker.count("odilo") == 0)
    }

    @Test func counterTripsAtThreshold() {
        var breaker = CircuitBreaker(threshold: 3)
        #expect(!breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        #expect(!breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        #expect(breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
    }

    @Test func counterDoesNotDoubleTripWithoutSuccess() {
        var breaker = CircuitBreaker(threshold: 2)
        #expect(!breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        #expect(breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        let after = breaker.report(project: "odilo", agent: "project-meta", success: false)
        #expect(!after.tripped, "further failures past the trip do not re-fire")
        #expect(after.count == 3, "the count keeps rising after a trip")
    }

    @Test func counterIsPerProject() {
        var breaker = CircuitBreaker(threshold: 2)
        #expect(!breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        #expect(!breaker.report(project: "digital-twins", agent: "project-meta", success: false).tripped)
        #expect(breaker.count("odilo") == 1)
        #expect(breaker.count("digital-twins") == 1)
        #expect(breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
        #expect(breaker.report(project: "digital-twins", agent: "project-meta", success: false).tripped)
    }

    @Test func zeroThresholdTripsOnFirstFailure() {
        var breaker = CircuitBreaker(threshold: 0)
        #expect(breaker.threshold == 1)
        #expect(breaker.report(project: "odilo", agent: "project-meta", success: false).tripped)
    }

    @Test func otherAgentsDoNotCount() {
        var breaker = CircuitBreaker(threshold: 1)
        let outcome = breaker.report(project: "odilo", agent: "developer", success: false)
        #expect(outcome == .init(counted: false, count: 0, tripped: false))
        _ = breaker.report(project: "odilo", agent: "project-meta", success: false)
        #expect(breaker.report(project: "odilo", agent: "reviewer", success: true).count == 1,
                "another agent's success does not reset the count")
    }

    @Test func tripPausesTheProjectOnceAndResumeRearms() {
        var h = Harness { $0.circuitBreaker.threshold = 2 }
        _ = h.broker.decideReport(project: "odilo", agent: "project-meta-odilo", success: false, now: h.now)
        #expect(h.effects().isEmpty)
        let trip = try? h.broker.decideReport(project: "odilo", agent: "project-meta", success: false, now: h.now).get()
        #expect(trip?.tripped == true)
        #expect(h.effects() == [.paused(project: "odilo"), .tripped(project: "odilo", failures: 2)])
        #expect(h.acquire(project: "odilo").refusal?.reason == .paused)
        let again = try? h.broker.decideReport(project: "odilo", agent: "project-meta", success: false, now: h.now).get()
        #expect(again?.tripped == false)
        #expect(again?.count == 3)
        #expect(h.effects().isEmpty, "no second trip, no second pause")
        #expect(h.broker.decideResume("odilo", now: h.now) == .success(true))
        #expect(h.effects() == [.resumed(project: "odilo")])
        #expect(h.broker.breaker.count("odilo") == 0, "resume re-arms: the count starts over")
        _ = h.broker.decideReport(project: "odilo", agent: "project-meta", success: false, now: h.now)
        let retrip = try? h.broker.decideReport(project: "odilo", agent: "project-meta", success: false, now: h.now).get()
        #expect(retrip?.tripped == true, "a re-armed breaker trips again at the threshold")
    }

    @Test func breakerStateSurvivesExportImport() {
        var breaker = CircuitBreaker(threshold: 2)
        _ = breaker.report(project: "odilo", agent: "project-meta", success: false)
        _ = breaker.report(project: "odilo", agent: "project-meta", success: false)
        var restored = CircuitBreaker(threshold: 2)
        restored.importState(breaker.exportState())
        #expect(restored.count("odilo") == 2)
        #expect(!restored.report(project: "odilo", agent: "project-meta", success: false).tripped,
                "a restored tripped breaker does not trip twice")
    }

    @Test(arguments: ["", ".", "..", "a/b", "x\u{0}y", String(repeating: "p", count: 129)])
    func invalidProjectNamesAreRefused(name: String) {
        #expect(Names.projectNameProblem(name) != nil)
        var h = Harness()
        guard case .failure(.badRequest(let field, _)) = h.broker.decidePause(name, now: h.now) else {
            Issue.record("pause of \(name.debugDescription) was accepted")
            return
        }
        #expect(field == "project")
    }

    @Test func longestValidProjectName() {
        #expect(Names.projectNameProblem(String(repeating: "p", count: 128)) == nil)
    }
}
