import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Every op of protocol/PROTOCOL.md §8 against the real daemon, over its socket.
@Suite("Ops over the socket", .timeLimit(.minutes(1)))
struct OpsTests {
    @Test func helloNamesTheServer() throws {
        let daemon = try Daemon()
        let answer = try daemon.client().ask("hello", [("client", .text("tests"))])
        #expect(answer.ok)
        #expect(answer.string("server") == "turnstiled")
        #expect(answer.int("protocol") == 1)
        #expect(answer.int("pid") == Int64(daemon.process!.pid))
        #expect(answer.string("version") != nil)
    }

    @Test func acquireAnswersEveryFieldAndStatusHidesTheToken() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let granted = try client.ask("acquire", [("project", .text("alpha")), ("mode", .text("issue")),
                                                 ("model", .text("anthropic/claude-opus-4")), ("holder", .text("agent-1")),
                                                 ("workspace", .text("/src/app/")), ("ttl_ms", .integer(5000))])
        #expect(granted.ok)
        let token = try #require(granted.string("lease"))
        #expect(token.count == 32)
        #expect(granted.int("fence")! > 0)
        #expect(granted.int("ttl_ms") == 5000)
        #expect(granted.string("model") == "anthropic/claude-opus-4")
        #expect(granted.string("route") == "primary")
        #expect(granted.int("waited_ms") == 0)
        let status = try client.ask("status")
        #expect(status.ok)
        #expect(status["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 1)
        let lease = try #require(status["leases"]?.arrayValue?.first?.objectValue)
        #expect(lease["holder"]?.stringValue == "agent-1")
        #expect(lease["workspace"]?.stringValue == "/src/app")
        #expect(lease["bound"]?.boolValue == true)
        var writer = JSONWriter()
        writer.value(.object(status.object))
        #expect(!String(decoding: writer.bytes, as: UTF8.self).contains(token), "status never shows a token")
    }

    @Test func pipelinedRequestsAreAnsweredOutOfOrderById() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let holder = try daemon.client()
        let held = try holder.ask("acquire")
        let raw = try RawConnection(daemon)
        try raw.send("""
            {"id":"wait","op":"acquire","wait_ms":10000}
            {"id":2,"op":"hello"}
            {"id":[1],"op":"hello"}
            {"op":"hello"}
            {"id":null,"op":"hello"}
            {"id":1.50,"op":"hello"}

            """)
        #expect(try raw.receive()?["id"] == .number(JSONNumber(text: "2")))
        let badID = try raw.receive()
        #expect(badID?["error"]?.stringValue == "bad_request" && badID?["field"]?.stringValue == "id")
        #expect(try raw.receive()?["id"] == nil, "no id, no id in the answer")
        #expect(try raw.receive()?["id"] == .null)
        let verbatim = try raw.stream.readLine(timeoutMilliseconds: 10_000)!
        #expect(String(decoding: verbatim, as: UTF8.self).hasPrefix(#"{"id":1.50,"#), "the id is echoed verbatim")
        _ = try holder.ask("release", [("lease", held["lease"]!)])
        let granted = try raw.receive()
        #expect(granted?["id"]?.stringValue == "wait")
        #expect(granted?["ok"]?.boolValue == true)
    }

    @Test func heartbeatSingleAndMultiple() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let a = try client.ask("acquire", [("ttl_ms", .integer(2000))])["lease"]!
        let single = try client.ask("heartbeat", [("lease", a)])
        #expect(single.ok && single.int("ttl_ms") == 2000)
        let multi = try client.ask("heartbeat", [("leases", .array([a, .text(String(repeating: "0", count: 32)), .text("x")]))])
        #expect(multi.ok)
        let resultList = multi["results"]?.arrayValue?.compactMap { $0.objectValue }
        let results = try #require(resultList)
        #expect(results.count == 3)
        #expect(results[0]["ok"]?.boolValue == true && results[0]["ttl_ms"]?.numberValue?.int64 == 2000)
        #expect(results[1]["error"]?.stringValue == "not_found")
        #expect(results[2]["error"]?.stringValue == "bad_request")
        let missing = try client.ask("heartbeat", [("lease", .text(String(repeating: "a", count: 32)))])
        #expect(missing.error == "not_found")
    }

    @Test func releaseAttachCancelParkUnparkRevoke() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1\n")
        let first = try daemon.client()
        let lease = try first.ask("acquire", [("detach", .bool(true)), ("workspace", .text("/w"))])
        let token = lease["lease"]!
        let second = try daemon.client()
        let attached = try second.ask("attach", [("lease", token)])
        #expect(attached.ok && attached.int("fence") == lease.int("fence"))
        let waitID = try first.send("acquire", [("wait_ms", .integer(60_000))])
        let cancel = try first.ask("cancel", [("target", .integer(waitID))])
        #expect(cancel.ok)
        #expect(try first.answer(to: waitID, timeoutMilliseconds: 10_000).error == "cancelled")
        #expect(try first.ask("cancel", [("target", .integer(999))]).error == "not_found")
        #expect(try second.ask("park", [("lease", token)]).ok)
        let other = try first.ask("acquire")
        #expect(other.ok, "a parked lease frees its capacity")
        let unparkID = try second.send("unpark", [("lease", token), ("wait_ms", .integer(60_000))])
        _ = try first.ask("release", [("lease", other["lease"]!)])
        let unparked = try second.answer(to: unparkID, timeoutMilliseconds: 10_000)
        #expect(unparked.ok && unparked.string("lease") == token.stringValue && unparked.int("fence") == lease.int("fence"))
        let revoked = try first.ask("revoke", [("fence", .integer(lease.int("fence")!))])
        #expect(revoked.ok)
        let event = try second.event()
        #expect(event?["event"]?.stringValue == "revoked")
        #expect(event?["lease"] == token, "the holder's event carries its token")
        #expect(try first.ask("revoke", [("fence", .integer(lease.int("fence")!))]).error == "not_found")
        let released = try first.ask("release", [("lease", token)])
        #expect(released.error == "not_found")
    }

    @Test func releaseAnswersHeldTime() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let token = try client.ask("acquire")["lease"]!
        let released = try client.ask("release", [("lease", token)])
        #expect(released.ok && released.int("held_ms") != nil)
        #expect(try client.ask("release", [("lease", token)]).error == "not_found")
    }

    @Test func telemetryOps() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let recorded = try client.ask("record", [("model", .text("zai/glm-5")), ("session_id", .text("s1")),
                                                 ("latency_ms", .integer(120)), ("success", .bool(true)),
                                                 ("tokens", .object(JSONObject([("total", .integer(30)), ("input", .integer(20)),
                                                                                ("output", .integer(10))]))),
                                                 ("cost_usd", .number(JSONNumber(text: "0.25")))])
        #expect(recorded.ok && recorded["subscription_limited"]?.boolValue == false)
        let limited = try client.ask("record", [("model", .text("zai/glm-5")), ("latency_ms", .integer(5)),
                                                ("success", .bool(false)), ("error", .text("HTTP 429 Too Many Requests"))])
        #expect(limited["subscription_limited"]?.boolValue == true)
        let performance = try client.ask("performance", [("model", .text("zai/glm-5"))])
        let snapshot = try #require(performance["models"]?.arrayValue?.first?.objectValue)
        #expect(snapshot["successful_completions"]?.numberValue?.int64 == 1)
        #expect(snapshot["failed_completions"]?.numberValue?.int64 == 1)
        #expect(snapshot["avg_latency_ms"]?.numberValue?.double == 120)
        #expect(snapshot["subscription_limit_reached"]?.boolValue == true)
        #expect(snapshot["last_event_at"]?.stringValue?.hasSuffix("Z") == true)
        let usage = try client.ask("usage", [("session_id", .text("s1"))])
        let totals = try #require(usage["usage"]?.objectValue?["totals"]?.objectValue)
        #expect(totals["total_tokens"]?.numberValue?.int64 == 30)
        #expect(totals["cost_usd"]?.numberValue?.double == 0.25)
        let status = try client.ask("status")
        let pool = status["models"]?.objectValue?["zai/glm-5"]?.objectValue
        #expect(pool?["subscription_limited"]?.boolValue == true, "the limiter treats the flagged model as full")
    }

    @Test func metricsArePrometheusText() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        _ = try client.ask("acquire", [("mode", .text("time")), ("project", .text("p"))])
        let metrics = try client.ask("metrics")
        let text = try #require(metrics.string("text"))
        #expect(text.contains("# TYPE turnstile_active_leases gauge"))
        #expect(text.contains("turnstile_active_leases 1"))
        #expect(text.contains(#"turnstile_mode_in_use{mode="time"} 1"#))
        #expect(text.contains("turnstile_admitted_total 1"))
        #expect(text.contains(#"turnstile_queued{reason="global"} 0"#))
        #expect(text.contains("# TYPE turnstile_wait_avg_seconds gauge"))
        #expect(text.contains(#"turnstile_telemetry_evictions_total{kind="model"} 0"#))
        let names = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        #expect(!names.contains { $0.hasSuffix("_ms") || $0.contains("_ms_") }, "base units only (promtool)")
    }

    @Test func watchStreamsEventsWithoutTokens() throws {
        let daemon = try Daemon()
        let watcher = try daemon.client()
        #expect(try watcher.ask("watch").ok)
        let client = try daemon.client()
        let lease = try client.ask("acquire", [("project", .text("alpha")), ("holder", .text("h"))])
        _ = try client.ask("release", [("lease", lease["lease"]!)])
        _ = try client.ask("pause", [("project", .text("alpha"))])
        _ = try client.ask("resume", [("project", .text("alpha"))])
        _ = try client.ask("throttle", [("provider", .text("openai")), ("retry_after_ms", .integer(5000))])
        let names = try (0..<5).compactMap { _ in try watcher.event()?["event"]?.stringValue }
        #expect(names == ["granted", "released", "paused", "resumed", "throttled"])
        _ = try client.ask("acquire", [("holder", .text("h2"))])
        let next = try watcher.waitForEvent("granted")
        let granted = try #require(next)
        #expect(granted["lease"] == nil, "watch events never carry tokens")
        #expect(granted["holder"]?.stringValue == "h2")
    }
}
