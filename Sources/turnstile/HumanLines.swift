import ArgumentParser
import TurnstileClient
import TurnstileProtocol

/// `--json`, shared by every command that prints an answer: the daemon's answer as is, instead
/// of the short human line printed by default.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the daemon's answer as JSON instead of a short line.") var json = false
}

/// The short lines commands print for people: what happened, in the words a shell user would
/// use, with the numbers that matter. Pure functions of the daemon's answers.
enum HumanLines {
    static func text(_ value: JSONValue?) -> String { StatusTable.text(value) }

    static func duration(_ value: JSONValue?) -> String {
        guard let milliseconds = value?.numberValue?.uint64 else { return "-" }
        return Durations.describe(milliseconds: milliseconds)
    }

    /// `acquire`: the token first (it is what a script needs), then the lease's particulars.
    static func granted(_ answer: Answer) -> String {
        var line = "\(text(answer["lease"])) fence \(text(answer["fence"])) ttl \(duration(answer["ttl_ms"]))"
        if let model = answer["model"]?.stringValue {
            line += " model \(TerminalText.safe(model)) (\(text(answer["route"])))"
        }
        return line
    }

    static func heartbeat(_ answer: Answer, tokens: [String]) -> [String] {
        guard let results = answer["results"]?.arrayValue?.compactMap(\.objectValue) else {
            return ["extended: ttl \(duration(answer["ttl_ms"]))"]
        }
        return zip(tokens, results).map { token, result in
            let name = TerminalText.safe(String(token.prefix(8))) + "…"
            return result["ok"]?.boolValue == true ? "\(name) extended: ttl \(duration(result["ttl_ms"]))"
                : "\(name) \(text(result["error"]))"
        }
    }

    static func report(_ answer: Answer, project: String) -> String {
        guard answer["counted"]?.boolValue != false else { return "not counted (only project-meta agents count)" }
        let count = text(answer["count"])
        return answer["tripped"]?.boolValue == true ? "\(project): \(count) failures in a row: tripped, project paused"
            : "\(project): \(count) failures in a row"
    }

    /// `performance`: one line per model.
    static func performance(_ answer: Answer) -> [String] {
        let models = answer["models"]?.arrayValue?.compactMap(\.objectValue) ?? []
        guard !models.isEmpty else { return ["no completions recorded"] }
        var rows = [["MODEL", "OK", "FAILED", "SUCCESS", "AVG LATENCY", "LIMITED"]]
        for model in models {
            let rate = model["success_rate"]?.numberValue?.double.map { "\(Int(($0 * 100).rounded()))%" } ?? "-"
            let latency = model["avg_latency_ms"]?.numberValue?.double.map { "\(Int($0.rounded()))ms" } ?? "-"
            rows.append([text(model["model"]), text(model["successful_completions"]), text(model["failed_completions"]),
                         rate, latency, model["subscription_limit_reached"]?.boolValue == true ? "yes" : "no"])
        }
        return StatusTable.columns(rows)
    }

    /// `usage`: the session's totals, then one line per model.
    static func usage(_ answer: Answer) -> [String] {
        func line(_ name: String, _ sums: JSONObject?) -> String {
            "\(name): \(text(sums?["message_count"])) messages, \(text(sums?["input_tokens"])) in / "
                + "\(text(sums?["output_tokens"])) out tokens, $\(text(sums?["cost_usd"]))"
        }
        let usage = answer["usage"]?.objectValue
        var lines = [line("total", usage?["totals"]?.objectValue)]
        for member in usage?["by_model"]?.objectValue?.members ?? [] {
            lines.append("  " + line(TerminalText.safe(member.key), member.value.objectValue))
        }
        return lines
    }
}
