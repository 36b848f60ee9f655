import ArgumentParser

/// The exit codes of `turnstile` (README, "The CLI"), from sysexits.h where one fits.
enum Exit {
    /// Usage error (EX_USAGE); argument-parser exits with it on bad arguments.
    static let usage = ExitCode(64)
    /// The daemon is unreachable (EX_UNAVAILABLE).
    static let unreachable = ExitCode(69)
    /// The lease was lost while COMMAND ran (EX_SOFTWARE).
    static let leaseLost = ExitCode(70)
    /// No permit within `--wait` (EX_TEMPFAIL).
    static let noPermit = ExitCode(75)
    /// The daemon refused the request.
    static let refused = ExitCode(1)
}
