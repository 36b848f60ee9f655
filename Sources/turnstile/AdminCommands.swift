import ArgumentParser
import TurnstileClient
import TurnstileProtocol

/// `turnstile pause PROJECT` (admin).
struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause a project: its acquires wait (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The project.") var project: String

    func run() throws {
        try finish(connection.connect().request(.pause(project: project)), output) { _ in
            ["paused \(TerminalText.safe(project))"]
        }
    }
}

/// `turnstile resume PROJECT` (admin).
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Resume a project and re-arm its circuit breaker (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The project.") var project: String

    func run() throws {
        try finish(connection.connect().request(.resume(project: project)), output) { answer in
            ["resumed \(TerminalText.safe(project))" + (answer["was_paused"]?.boolValue == false ? " (it was not paused)" : "")]
        }
    }
}

/// `turnstile throttle PROVIDER --retry-after 30s | --retry-after-header VALUE | --clear` (admin).
struct Throttle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throttle",
        abstract: "Record that a provider rate-limited a tenant, or lift that (admin).",
        discussion: "A throttle is never shortened: --retry-after 0 leaves a longer one in force and says so; --clear lifts it.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The provider.") var provider: String
    @Option(help: "The tenant (default local).") var tenant: String?
    @Option(name: .customLong("retry-after"), help: "How long (30s, 2m…).") var retryAfter: String?
    @Option(name: .customLong("retry-after-header"), help: "The provider's Retry-After header as given (seconds or an HTTP date).")
    var header: String?
    @Flag(help: "Lift the throttle now.") var clear = false

    func validate() throws {
        if [retryAfter != nil, header != nil, clear].filter({ $0 }).count != 1 {
            throw ValidationError("give one of --retry-after, --retry-after-header or --clear")
        }
    }

    func run() throws {
        let who = "\(TerminalText.safe(provider)) for tenant \(TerminalText.safe(tenant ?? "local"))"
        if clear {
            return try finish(connection.connect().request(.clearThrottle(provider: provider, tenant: tenant)), output) { answer in
                [answer["cleared"]?.boolValue == true ? "lifted the throttle on \(who)" : "\(who) was not throttled"]
            }
        }
        var length = ClientRequest.RetryAfterValue.header(header ?? "")
        if let retryAfter {
            guard let milliseconds = Durations.milliseconds(retryAfter) else { throw ValidationError("--retry-after: not a duration") }
            length = .milliseconds(milliseconds)
        }
        let asked = retryAfter.flatMap(Durations.milliseconds)
        let request = ClientRequest.throttle(provider: provider, tenant: tenant, retryAfter: length)
        try finish(connection.connect().request(request), output) { answer in
            guard let left = answer["retry_after_ms"], let ms = left.numberValue?.uint64 else { return ["throttled \(who)"] }
            if let asked, ms > asked {
                return ["\(who) stays throttled for \(HumanLines.duration(left)): a throttle is never shortened "
                    + "(turnstile throttle \(TerminalText.safe(provider)) --clear lifts it)"]
            }
            return ms == 0 ? ["\(who) is not throttled"] : ["throttled \(who) for \(HumanLines.duration(left))"]
        }
    }
}

/// `turnstile unflag MODEL` (admin): lift a subscription-limit flag before its TTL.
struct Unflag: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unflag",
        abstract: "Lift a model's subscription-limit flag before its TTL (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The model (provider/model, or the name a record used).") var model: String

    func run() throws {
        try finish(connection.connect().request(.unflag(model: model)), output) { answer in
            [answer["unflagged"]?.boolValue == true ? "lifted the subscription-limit flag on \(TerminalText.safe(model))"
                : "\(TerminalText.safe(model)) was not flagged"]
        }
    }
}

/// `turnstile reload` (admin): re-read the config file.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload", abstract: "Make the daemon re-read its config (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions

    func run() throws { try finish(connection.connect().request(.reload), output) { _ in ["reloaded"] } }
}
