import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Numbers and dates at the edges of their ranges reach sums, products and calendar
/// arithmetic in the daemon: each is answered (or saturates) and the daemon lives on.
@Suite("Overflowing input", .timeLimit(.minutes(1)))
struct OverflowInputTests {
    @Test func usageOfHugeTokenCountsAnswersAndTheDaemonLives() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let tokens = JSONValue.object(JSONObject([("input", .integer(Int64.max)), ("output", .integer(Int64.max)),
                                                 ("total", .integer(Int64.max))]))
        for _ in 0..<3 {
            let recorded = try client.ask("record", [("model", .text("a/m")), ("session_id", .text("s")),
                                                     ("latency_ms", .integer(Int64.max)), ("success", .bool(true)),
                                                     ("tokens", tokens), ("cost_usd", .number(JSONNumber(text: "1e308")))])
            #expect(recorded.ok, "\(recorded.object)")
        }
        let usage = try client.ask("usage", [("session_id", .text("s"))])
        #expect(usage.ok, "\(usage.object)")
        let totals = usage["usage"]?.objectValue?["totals"]?.objectValue
        #expect(totals?["input_tokens"]?.numberValue?.uint64 == UInt64.max)
        #expect(totals?["message_count"]?.numberValue?.int64 == 3)
        #expect(totals?["cost_usd"]?.numberValue?.double == Double.greatestFiniteMagnitude, "finite, not null")
        #expect(try client.ask("performance", [("model", .text("a/m"))]).ok)
        #expect(try daemon.client().ask("hello").ok, "still alive")
        #expect(daemon.process?.waitForExit(milliseconds: 0) == nil)
    }
}

extension OverflowInputTests {
    @Test func hostileRetryAfterIsRefusedOrClampedAndTheDaemonLives() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let week: Int64 = 604_800_000
        for text in ["Sun Nov  6 08:49:37 300000000", "Sunday, 06-Nov-99999999999 08:49:37 GMT", "1e400", "-1",
                     "Sun, 06 Nov 99999999999999999999 08:49:37 GMT"] {
            let answer = try client.ask("throttle", [("provider", .text("p")), ("retry_after", .text(text))])
            #expect(answer.error == "bad_request" && answer.string("field") == "retry_after", "\(text): \(answer.object)")
        }
        for text in ["99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            let answer = try client.ask("throttle", [("provider", .text("p")), ("retry_after", .text(text))])
            #expect(answer.ok && answer.int("retry_after_ms") == week, "\(text): \(answer.object)")
        }
        let number = try client.ask("throttle", [("provider", .text("q")),
                                                 ("retry_after", .number(JSONNumber(text: "1e400")))])
        #expect(number.error == "bad_request" && number.string("field") == "retry_after")
        #expect(try daemon.client().ask("status").ok, "still alive")
    }
}

extension OverflowInputTests {
    /// Starts `turnstiled` with extra arguments and expects it to refuse to start.
    func refusesToStart(config: String, _ arguments: [String] = []) throws -> (code: Int32?, output: String) {
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try config.write(toFile: directory + "/t.toml", atomically: true, encoding: .utf8)
        let process = try ChildProcess([Binaries.turnstiled, "--config", directory + "/t.toml",
                                        "--socket", directory + "/t.sock"]
                                       + (arguments.isEmpty ? ["--state-dir", directory + "/state"] : arguments))
        guard process.waitForExit(milliseconds: 10_000) != nil else {
            process.signal(SIGKILL)
            _ = process.waitForExit()
            return (nil, process.output)
        }
        return (process.exitCode, process.output)
    }

    @Test func aConfigPastANumericBoundIsRefusedAtStart() throws {
        let result = try refusesToStart(config: "[limits]\nglobal = 4000000000000000000\nfairness = \"proportional\"\n")
        #expect(result.code != nil && result.code != 0, "\(result.output)")
        #expect(result.output.contains("t.toml:2: limits.global: must be a whole number from 0 to 1000000"), "\(result.output)")
    }

    @Test func thePauseDirectoryCannotBeTheStateDirectory() throws {
        let inFile = try refusesToStart(config: "state_dir = \"/tmp/tsd-x/s\"\npause_dir = \"/tmp/tsd-x/s/\"\n")
        #expect(inFile.code != nil && inFile.code != 0)
        #expect(inFile.output.contains("t.toml:2: pause_dir: pause_dir and state_dir are the same directory"), "\(inFile.output)")
        let scratch = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let byFlags = try refusesToStart(config: "", ["--state-dir", scratch + "/s", "--pause-dir", scratch + "//s/."])
        #expect(byFlags.code != nil && byFlags.code != 0)
        #expect(byFlags.output.contains("pause_dir and state_dir are the same directory"), "\(byFlags.output)")
        let mixed = try refusesToStart(config: "pause_dir = \"\(scratch)\"\n", ["--state-dir", scratch + "/inner"])
        #expect(mixed.code != nil && mixed.code != 0)
        #expect(mixed.output.contains("is inside pause_dir"), "\(mixed.output)")
        #expect(!FileManager.default.fileExists(atPath: scratch + "/inner"), "refused before creating anything")
    }
}

extension OverflowInputTests {
    @Test func cancelTellsApartIdsBeyondSixtyFourBits() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 0\n")
        let raw = try RawConnection(daemon)
        try raw.send(#"{"id":18446744073709551616,"op":"acquire","wait_ms":60000}"# + "\n")
        try raw.send(#"{"id":18446744073709551617,"op":"acquire","wait_ms":60000}"# + "\n")
        try raw.send(#"{"id":"c","op":"cancel","target":18446744073709551616}"# + "\n")
        let cancelAnswer = try raw.receive()
        #expect(cancelAnswer?["id"]?.stringValue == "c" && cancelAnswer?["ok"]?.boolValue == true)
        let cancelled = try raw.receive()
        #expect(cancelled?["error"]?.stringValue == "cancelled")
        #expect(cancelled?["id"]?.numberValue?.text == "18446744073709551616", "the one named, not its double twin")
        try raw.send(#"{"id":"d","op":"cancel","target":1.8446744073709551617e19}"# + "\n")
        #expect(try raw.receive()?["ok"]?.boolValue == true, "the other, by another spelling of its value")
        #expect(try raw.receive()?["id"]?.numberValue?.text == "18446744073709551617")
    }
}
