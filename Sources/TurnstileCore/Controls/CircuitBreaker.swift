/// The project circuit breaker (protocol/PROTOCOL.md §8.10 to §8.14): consecutive failures of a project's `project-meta`
/// agent pause the project, once, until a success or a `resume`.
///
/// The counter is deliberately narrow, as in the seed's `ProjectFailureCounter`: only
/// `project-meta` and `project-meta-<suffix>` agents count, so a flaky developer agent cannot
/// pause a whole project.
public struct CircuitBreaker: Sendable, Equatable {
    /// What one `report` did.
    public struct Outcome: Sendable, Equatable {
        /// Whether the agent is a `project-meta` agent (else nothing changed).
        public var counted: Bool
        /// The project's consecutive failure count after the report.
        public var count: Int
        /// True only on the report that trips the breaker.
        public var tripped: Bool
    }

    /// What persists across restarts for one project.
    public struct ProjectState: Sendable, Equatable, Codable {
        /// Consecutive failures.
        public var failures: Int
        /// Whether it has tripped since the last success or resume.
        public var tripped: Bool

        public init(failures: Int, tripped: Bool) {
            self.failures = failures
            self.tripped = tripped
        }
    }

    /// Failures that trip it; a configured 0 is treated as 1.
    public private(set) var threshold: Int
    private var projects: [ExactName: ProjectState] = [:]

    /// Creates a breaker.
    /// - Parameter threshold: consecutive failures that trip it; 0 (or less) means 1.
    public init(threshold: Int) {
        self.threshold = Swift.max(threshold, 1)
    }

    /// Whether an agent name is a `project-meta` agent.
    public static func isProjectMetaAgent(_ name: String) -> Bool {
        name == "project-meta" || name.hasPrefix("project-meta-")
    }

    /// Records one run's outcome.
    /// - Returns: the count and whether this report tripped the breaker.
    public mutating func report(project: String, agent: String, success: Bool) -> Outcome {
        let project = ExactName(project)
        guard Self.isProjectMetaAgent(agent) else {
            return Outcome(counted: false, count: count(project), tripped: false)
        }
        if success {
            projects[project] = nil
            return Outcome(counted: true, count: 0, tripped: false)
        }
        var state = projects[project] ?? ProjectState(failures: 0, tripped: false)
        state.failures = state.failures.addingSaturated(1)
        let trips = state.failures >= threshold && !state.tripped
        if trips { state.tripped = true }
        projects[project] = state
        return Outcome(counted: true, count: state.failures, tripped: trips)
    }

    /// Re-arms the breaker of a project (on `resume`): the count starts again from zero, so
    /// that an operator's resume is not undone by the very next failure.
    public mutating func rearm(project: String) {
        projects[ExactName(project)] = nil
    }

    /// The consecutive failure count of a project.
    public func count(_ project: String) -> Int { count(ExactName(project)) }

    /// The consecutive failure count of a project.
    func count(_ project: ExactName) -> Int {
        projects[project]?.failures ?? 0
    }

    /// Projects with a non-zero count.
    var projectNames: Dictionary<ExactName, ProjectState>.Keys { projects.keys }

    /// Changes the threshold (on reload); counts are kept.
    public mutating func setThreshold(_ value: Int) {
        threshold = Swift.max(value, 1)
    }

    /// Every project with a non-zero count, for persistence. The saved form is keyed by
    /// `String`, which cannot hold two canonically equivalent spellings apart: of two such
    /// projects the higher count is kept.
    public func exportState() -> [String: ProjectState] {
        Dictionary(projects.map { ($0.key.text, $0.value) }, uniquingKeysWith: { $0.failures >= $1.failures ? $0 : $1 })
    }

    /// Restores counts saved by `exportState`.
    public mutating func importState(_ state: [String: ProjectState]) {
        projects = Dictionary(state.filter { $0.value.failures > 0 }.map { (ExactName($0.key), $0.value) },
                              uniquingKeysWith: { $1 })
    }
}
