#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileClient
import TurnstileProtocol

/// `turnstile status`: a readable table, or the daemon's answer as is with `--json`.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show limits, use, leases, waiters, pauses and throttles.")
    @OptionGroup var connection: SocketOption
    @Flag(help: "Print the daemon's status answer as JSON.") var json = false
    @Option(help: "List only this project's leases and waiters.") var project: String?
    @Option(help: "List only this mode's leases and waiters.") var mode: String?
    @Flag(help: "List only the waiters.") var waiting = false

    func run() throws {
        let answer = try connection.connect().request(.status)
        let filter = StatusTable.Filter(project: project, mode: mode, waitingOnly: waiting)
        try finish(answer) { answer in
            if json { printJSON(answer.object) } else { print(StatusTable.render(answer.object, filter: filter), terminator: "") }
        }
    }
}

/// `turnstile watch`: one line per event until interrupted.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Stream events: granted, released, expired, revoked, paused, resumed, tripped, throttled.")
    @OptionGroup var connection: SocketOption
    @Flag(help: "Print events as JSON lines.") var json = false

    func run() throws {
        let client = try connection.connect()
        try finish(client.request(.watch)) { _ in }
        while true {
            let event: JSONObject?
            do {
                event = try client.nextEvent()
            } catch {
                printError("turnstile: \(error)")
                throw Exit.unreachable
            }
            guard let event else { continue }
            if json { printJSON(event) } else { printLine(EventLine.render(event)) }
        }
    }
}

/// `turnstile metrics`: Prometheus text.
struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Print the daemon's metrics in Prometheus text format.")
    @OptionGroup var connection: SocketOption

    func run() throws {
        let answer = try connection.connect().request(.metrics)
        try finish(answer) { print($0.string("text") ?? "", terminator: "") }
    }
}

/// `turnstile performance [--model M]`.
struct Performance: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "performance", abstract: "Show model telemetry: completions, success rate, latency, limits.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Option(help: "One model (provider/model or bare name).") var model: String?

    func run() throws {
        try finish(connection.connect().request(.performance(model: model)), output, human: HumanLines.performance)
    }
}

/// `turnstile usage SESSION`.
struct Usage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Show a session's token, cost and message sums.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The session id.") var session: String

    func run() throws {
        try finish(connection.connect().request(.usage(session: session)), output, human: HumanLines.usage)
    }
}

/// `turnstile record --model M --latency D (--success | --no-success) …`.
struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record", abstract: "Record a completed model call for telemetry.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Option(help: "The model (provider/model or bare name).") var model: String
    @Option(help: "How long the call took (e.g. 850ms).") var latency: String
    @Flag(inversion: .prefixedNo, help: "Whether the call succeeded.") var success: Bool
    @Option(name: .customLong("session"), help: "The agent session, for usage.") var session: String?
    @Option(help: "The error text of a failure.") var error: String?
    @Option(help: "The HTTP status of a failure.") var status: Int?
    @Option(name: .customLong("input-tokens")) var inputTokens: UInt64?
    @Option(name: .customLong("output-tokens")) var outputTokens: UInt64?
    @Option(name: .customLong("total-tokens")) var totalTokens: UInt64?
    @Option(name: .customLong("cost-usd")) var costUSD: Double?

    func run() throws {
        guard let milliseconds = Durations.milliseconds(latency) else { throw ValidationError("--latency: not a duration") }
        if let costUSD, !costUSD.isFinite { throw ValidationError("--cost-usd: not a finite number") }
        var record = RecordParameters(model: model, latencyMilliseconds: milliseconds, success: success)
        record.sessionID = session
        record.error = error
        record.status = status
        if let inputTokens { record.tokens.append(("input", inputTokens)) }
        if let outputTokens { record.tokens.append(("output", outputTokens)) }
        let (sum, overflow) = (inputTokens ?? 0).addingReportingOverflow(outputTokens ?? 0)
        let total = totalTokens ?? (overflow ? UInt64.max : sum)
        if total > 0 { record.tokens.append(("total", total)) }
        record.costUSD = costUSD.map { "\($0)" }
        try finish(connection.connect().request(.record(record)), output) { _ in ["recorded"] }
    }
}

/// `turnstile report PROJECT AGENT --success|--no-success`: a project-meta run's outcome.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Report a project-meta run's outcome to the circuit breaker.")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The project.") var project: String
    @Argument(help: "The agent's name (project-meta or project-meta-<suffix> count).") var agent: String
    @Flag(inversion: .prefixedNo, help: "Whether the run succeeded.") var success: Bool
    @OptionGroup var output: OutputOptions

    func run() throws {
        let answer = try connection.connect().request(.report(project: project, agent: agent, success: success))
        try finish(answer, output) { [HumanLines.report($0, project: TerminalText.safe(project))] }
    }
}
