#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileClient
import TurnstileProtocol

/// `turnstile run … -- COMMAND`: acquire, run COMMAND under the lease, release.
struct Run: ParsableCommand {
    /// `_superCommandName` matters only where Run is the root command, which is when `turnstile
    /// run` is parsed as Run alone (`Turnstile.runDirectly`): ArgumentParser then skips its check
    /// for a completion-script request (two more parsers built by reflection, a sixth of `run --
    /// true`; runDirectly leaves those requests to the usual path), and an error's usage line
    /// names `turnstile run` as the usual path does. In the tree of every command it is unused.
    static let configuration = CommandConfiguration(
        commandName: "run",
        _superCommandName: "turnstile",
        abstract: "Run COMMAND holding a permit: acquire, heartbeat, release; stop COMMAND if the lease is lost.",
        discussion: """
            COMMAND runs in its own process group (in the terminal's foreground when there is one) \
            with TURNSTILE_LEASE, TURNSTILE_FENCE and, when a model was granted, TURNSTILE_MODEL, \
            TURNSTILE_PROVIDER and TURNSTILE_ROUTE set. The lease is bound to COMMAND's process group \
            (its slot stays taken while any process of the group runs, even after this command \
            is gone: the daemon stops the group) and heartbeated at a third of its ttl; SIGINT, SIGTERM and SIGHUP are forwarded to COMMAND's \
            group. If the lease is lost COMMAND's group gets SIGTERM, then SIGKILL after --grace, \
            and turnstile exits 70. If the daemon restarts, turnstile reconnects and re-attaches \
            the lease for as long as its ttl allows.

            Exit codes: COMMAND's own (128+N if signal N ended it); 64 usage error; 69 daemon \
            unreachable; 70 lease lost; 75 (or --conflict-exit-code) no permit within --wait \
            (COMMAND never started).
            """)

    @OptionGroup var connection: SocketOption
    @OptionGroup var permit: PermitOptions
    @Option(help: "How long COMMAND gets between SIGTERM and SIGKILL when the lease is lost.") var grace: String = "10s"
    @Option(name: .customLong("conflict-exit-code"),
            help: "The exit code when no permit comes within --wait (default 75), to tell it from COMMAND's own (flock -E).")
    var conflictExitCode: Int32?
    @Flag(help: "Report a long wait's reason and position whenever they change, also when stderr is not a terminal.")
    var verbose = false
    @Argument(parsing: .postTerminator, help: "The command to run.") var command: [String]

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command to run after --") }
        if Durations.milliseconds(grace) == nil { throw ValidationError("--grace: not a duration: \(grace)") }
        if let ttl = permit.ttl, Durations.milliseconds(ttl) == nil { throw ValidationError("--ttl: not a duration: \(ttl)") }
        if let conflictExitCode, !(0...255).contains(conflictExitCode) {
            throw ValidationError("--conflict-exit-code: an exit code is 0 to 255")
        }
    }

    func run() throws {
        let holder = permit.holder ?? String(command[0].split(separator: "/").last ?? Substring(command[0]))
        var runner = Runner(socketPath: connection.path, command: command, acquire: try permit.parameters(holder: holder),
                            graceMilliseconds: Int64(Durations.milliseconds(grace)!), waitDescription: permit.wait,
                            noPermitExitCode: conflictExitCode ?? Exit.noPermit.rawValue,
                            reportsProgress: verbose || isatty(STDERR_FILENO) == 1)
        let code = try runner.run()
        throw ExitCode(code)
    }
}
