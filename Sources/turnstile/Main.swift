import ArgumentParser

/// `turnstile`: the everyday client of `turnstiled` (SPEC §8).
@main
struct Turnstile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turnstile",
        abstract: "Ask turnstiled for permits, and run agents under them.",
        discussion: """
            Exit codes: COMMAND's own (run); 64 usage error (also a request the daemon answered \
            bad_request); 69 daemon unreachable; 70 lease lost while COMMAND ran; 75 no permit \
            within --wait; 1 the daemon refused a request.
            """,
        subcommands: [
            Run.self, Acquire.self, Heartbeat.self, Release.self, Attach.self, Revoke.self,
            Status.self, Watch.self, Metrics.self, Pause.self, Resume.self, Report.self, Throttle.self,
            Record.self, Performance.self, Usage.self, Reload.self,
        ])
}
