import ArgumentParser
import TurnstileClient
import TurnstileProtocol

/// `turnstile pause PROJECT` (admin).
struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pause a project: its acquires wait (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The project.") var project: String

    func run() throws {
        try finish(connection.connect().request("pause", [("project", .text(project))]), output) { _ in
            ["paused \(TerminalText.safe(project))"]
        }
    }
}

/// `turnstile resume PROJECT` (admin).
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a project and re-arm its circuit breaker (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The project.") var project: String

    func run() throws {
        try finish(connection.connect().request("resume", [("project", .text(project))]), output) { answer in
            ["resumed \(TerminalText.safe(project))" + (answer["was_paused"]?.boolValue == false ? " (it was not paused)" : "")]
        }
    }
}

/// `turnstile throttle PROVIDER --retry-after 30s | --retry-after-header VALUE` (admin).
struct Throttle: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Record that a provider rate-limited a tenant (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The provider.") var provider: String
    @Option(help: "The tenant (default local).") var tenant: String?
    @Option(name: .customLong("retry-after"), help: "How long (30s, 2m…).") var retryAfter: String?
    @Option(name: .customLong("retry-after-header"), help: "The provider's Retry-After header as given (seconds or an HTTP date).")
    var header: String?

    func validate() throws {
        if (retryAfter == nil) == (header == nil) { throw ValidationError("give either --retry-after or --retry-after-header") }
    }

    func run() throws {
        var fields: [(String, JSONValue)] = [("provider", .text(provider))]
        if let tenant { fields.append(("tenant", .text(tenant))) }
        if let retryAfter {
            guard let milliseconds = Durations.milliseconds(retryAfter) else { throw ValidationError("--retry-after: not a duration") }
            fields.append(("retry_after_ms", .integer(milliseconds)))
        }
        if let header { fields.append(("retry_after", .text(header))) }
        try finish(connection.connect().request("throttle", fields), output) { answer in
            let left = answer["retry_after_ms"].map { " for \(HumanLines.duration($0))" } ?? ""
            return ["throttled \(TerminalText.safe(provider)) for tenant \(TerminalText.safe(tenant ?? "local"))\(left)"]
        }
    }
}

/// `turnstile reload` (admin): re-read the config file.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make the daemon re-read its config (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions

    func run() throws { try finish(connection.connect().request("reload"), output) { _ in ["reloaded"] } }
}
