#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileProtocol

/// `turnstile`: the everyday client of `turnstiled` (README, "The CLI").
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
        version: TurnstileVersion.current,
        subcommands: [
            Run.self, Acquire.self, Heartbeat.self, Release.self, Attach.self, Park.self, Unpark.self, Revoke.self,
            Status.self, Watch.self, Metrics.self, Pause.self, Resume.self, Report.self, Throttle.self, Unflag.self, Cancel.self,
            Record.self, Performance.self, Usage.self, Reload.self,
        ])

    /// Options every command shares may come before the command too (`turnstile --socket S
    /// status`, as `git -C` and `etcdctl --endpoints` take theirs): they are moved after it.
    static func main() {
        let arguments = GlobalOptions.movedAfterCommand(Array(CommandLine.arguments.dropFirst()))
        if arguments.first == "run" { runDirectly(Array(arguments.dropFirst())) }
        main(arguments)
    }

    /// `turnstile run …`, the command every agent launch pays for, parsed as `Run` alone:
    /// ArgumentParser then builds Run's options only, not the tree of every command (a third of
    /// the start-up measured here). Help, completion requests and every parse error take the
    /// usual path, so what they print is the same.
    private static func runDirectly(_ arguments: [String]) {
        let beforeCommand = arguments.prefix { $0 != "--" }
        if beforeCommand.contains(where: { $0 == "-h" || $0 == "--help" || $0.hasPrefix("--generate-") }) { return }
        guard let command = try? Run.parse(arguments) else { return }
        do {
            try command.run()
            Run.exit()
        } catch let code as ExitCode {
            // What `Run.exit(withError:)` ends with for an exit code (it prints nothing), without
            // the help generator it builds for every error first: a tenth of `run -- true`.
            Glibc.exit(code.rawValue)
        } catch {
            Run.exit(withError: error)
        }
    }
}

/// The options every command shares, found before the command name.
enum GlobalOptions {
    /// Options that take a value, in both spellings (`--socket S`, `--socket=S`).
    static let withValue = ["--socket"]

    /// The arguments with the shared options that stand before the command moved to just
    /// after it (where each command declares them); everything else keeps its place.
    static func movedAfterCommand(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if withValue.contains(argument), index + 1 < arguments.count {
                leading += [argument, arguments[index + 1]]
                index += 2
            } else if withValue.contains(where: { argument.hasPrefix($0 + "=") }) {
                leading.append(argument)
                index += 1
            } else {
                break
            }
        }
        guard !leading.isEmpty, index < arguments.count else { return arguments }
        return [arguments[index]] + leading + arguments[(index + 1)...]
    }
}
