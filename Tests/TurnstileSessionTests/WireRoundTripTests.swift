import Testing
import TurnstileCore
import TurnstileProtocol
@testable import TurnstileSession

/// The typed wire in both directions: every request a client can send decodes, on the
/// daemon's side, to what it says; the daemon's answers and events decode into the client's
/// typed answers with the values it wrote.
@Suite("Wire round trip")
struct WireRoundTripTests {
    private static let token = "0123456789abcdef0123456789abcdef"
    private static var leaseToken: LeaseToken { LeaseToken(hex: token)! }

    /// The daemon's decoding of a client's request line.
    private func decoded(_ request: ClientRequest) throws -> Request {
        var writer = JSONWriter()
        request.encode(id: 9, into: &writer)
        let line = writer.bytes.dropLast()
        guard case .object(let object) = try JSONParser.parse(Array(line)) else { throw RequestError(.badJSON, "not an object") }
        #expect(object["id"]?.numberValue?.int64 == 9 && object["op"]?.stringValue == request.op.rawValue)
        let decoded = try RequestDecoder.decode(object)
        #expect(decoded.op == request.op)
        return decoded
    }

    @Test func anAcquireWithEveryFieldDecodesToTheSameRequest() throws {
        var parameters = AcquireParameters()
        parameters.project = "alpha"
        parameters.mode = "issue"
        parameters.model = "anthropic/claude-opus-4"
        parameters.fallback = ["anthropic/claude-sonnet-4"]
        parameters.providers = ["github"]
        parameters.workspace = "/src/alpha"
        parameters.tenant = "team-a"
        parameters.priority = 5
        parameters.pools = ["build"]
        parameters.poolLimits = [("build", 3)]
        parameters.waitMilliseconds = 2500
        parameters.ttlMilliseconds = 9000
        parameters.detach = true
        parameters.pid = 77
        parameters.pgid = 78
        parameters.holder = "cron"
        parameters.notify = true
        guard case .acquire(let request, let notify) = try decoded(.acquire(parameters)) else {
            Issue.record("not an acquire")
            return
        }
        let admission = request.admission
        #expect(notify)
        #expect(admission.project == "alpha" && admission.mode == .issue && admission.tenant == "team-a")
        #expect(admission.model == ModelKey(provider: "anthropic", model: "claude-opus-4"))
        #expect(admission.fallback == [ModelKey(provider: "anthropic", model: "claude-sonnet-4")])
        #expect(admission.providers == ["github"] && admission.workspace == "/src/alpha" && admission.priority == 5)
        #expect(admission.pools == ["build"] && admission.poolLimits == ["build": 3])
        #expect(request.waitMilliseconds == 2500 && request.ttlMilliseconds == 9000 && request.detach)
        #expect(request.pid == 77 && request.pgid == 78 && request.holder == "cron")
    }

    @Test func anEmptyAcquireTakesTheDaemonsDefaults() throws {
        guard case .acquire(let request, let notify) = try decoded(.acquire(AcquireParameters())) else {
            Issue.record("not an acquire")
            return
        }
        #expect(!notify && request.admission.project == Names.globalProject && request.waitMilliseconds == 0)
        #expect(request.ttlMilliseconds == nil && !request.detach)
    }

    @Test func everyOtherRequestDecodesToWhatItSays() throws {
        let token = Self.leaseToken
        #expect(try decoded(.hello(client: "ci")) == .hello(client: "ci"))
        #expect(try decoded(.heartbeat(lease: Self.token)) == .heartbeat([.token(token)], multiple: false))
        #expect(try decoded(.heartbeatMany(leases: [Self.token, Self.token]))
            == .heartbeat([.token(token), .token(token)], multiple: true))
        #expect(try decoded(.release(lease: Self.token)) == .release(token, exit: nil))
        #expect(try decoded(.release(lease: Self.token, end: .exitCode(3))) == .release(token, exit: .code(3)))
        #expect(try decoded(.release(lease: Self.token, end: .signal(9))) == .release(token, exit: .signal(9)))
        #expect(try decoded(.attach(lease: Self.token, pid: 5, pgid: 6)) == .attach(token, pid: 5, pgid: 6))
        #expect(try decoded(.cancel(target: .string("x"))) == .cancel(target: RequestKey(.string("x"))))
        #expect(try decoded(.cancelHolder("cron")) == .cancelHolder("cron"))
        #expect(try decoded(.status) == .status)
        #expect(try decoded(.pause(project: "alpha")) == .pause(project: "alpha"))
        #expect(try decoded(.resume(project: "alpha")) == .resume(project: "alpha"))
        #expect(try decoded(.report(project: "alpha", agent: "project-meta", success: false))
            == .report(project: "alpha", agent: "project-meta", success: false))
        #expect(try decoded(.throttle(provider: "openai", tenant: "t", retryAfter: .milliseconds(500)))
            == .throttle(provider: "openai", tenant: "t", retryAfter: .milliseconds(500)))
        #expect(try decoded(.throttle(provider: "openai", tenant: nil, retryAfter: .header("120")))
            == .throttle(provider: "openai", tenant: "local", retryAfter: .header("120")))
        #expect(try decoded(.clearThrottle(provider: "openai", tenant: nil)) == .clearThrottle(provider: "openai", tenant: "local"))
        #expect(try decoded(.unflag(model: "openai/gpt-5")) == .unflag(model: "openai/gpt-5"))
        #expect(try decoded(.performance(model: nil)) == .performance(model: nil))
        #expect(try decoded(.usage(session: "s1")) == .usage(session: "s1"))
        #expect(try decoded(.metrics) == .metrics)
        #expect(try decoded(.watch) == .watch)
        #expect(try decoded(.reload) == .reload)
        #expect(try decoded(.park(lease: Self.token)) == .park(token))
        #expect(try decoded(.unpark(lease: Self.token, waitMilliseconds: 10, notify: true))
            == .unpark(token, waitMilliseconds: 10, notify: true))
        #expect(try decoded(.revoke(lease: Self.token)) == .revoke(.token(token)))
        #expect(try decoded(.revokeFence(12)) == .revoke(.fence(12)))
    }

    @Test func aRecordDecodesToItsCompletionEvent() throws {
        var record = RecordParameters(model: "openai/gpt-5", latencyMilliseconds: 850, success: false)
        record.sessionID = "s1"
        record.tokens = [("input", 10), ("output", 20), ("total", 30)]
        record.costUSD = "0.25"
        record.error = "rate limited"
        record.status = 429
        guard case .record(let event) = try decoded(.record(record)) else {
            Issue.record("not a record")
            return
        }
        #expect(event.model == "openai/gpt-5" && event.sessionID == "s1" && event.latencyMilliseconds == 850 && !event.success)
        #expect(event.tokens.input == 10 && event.tokens.output == 20 && event.tokens.total == 30)
        #expect(event.costUSD == 0.25 && event.error == "rate limited" && event.status == 429)
    }

    @Test func theDaemonsAnswersDecodeIntoTheClientsTypes() throws {
        let loop = EmbeddedTransport { $0.limits.global = 1 }
        let holder = loop.connect()
        var parameters = AcquireParameters()
        parameters.project = "alpha"
        parameters.ttlMilliseconds = 5000
        var writer = JSONWriter()
        ClientRequest.acquire(parameters).encode(id: 1, into: &writer)
        loop.send(String(decoding: writer.bytes, as: UTF8.self), on: holder)
        let grantLine = try #require(loop.answer(holder))
        let grant = try #require(Grant(grantLine))
        #expect(grant.fence == 1 && grant.ttlMilliseconds == 5000 && grant.project == "alpha" && grant.lease.utf8.count == 32)

        let other = loop.connect()
        writer = JSONWriter()
        parameters.waitMilliseconds = 0
        ClientRequest.acquire(parameters).encode(id: 2, into: &writer)
        loop.send(String(decoding: writer.bytes, as: UTF8.self), on: other)
        let failureLine = try #require(loop.answer(other))
        let failure = try #require(WireFailure(failureLine))
        #expect(failure.errorCode == .unavailable && failure.reason == "global" && failure.limit == 1 && failure.inUse == 1)

        writer = JSONWriter()
        parameters.waitMilliseconds = 60_000
        parameters.notify = true
        ClientRequest.acquire(parameters).encode(id: 3, into: &writer)
        loop.send(String(decoding: writer.bytes, as: UTF8.self), on: other)
        let queuedLine = try #require(loop.answer(other))
        let queued = try #require(WireEvent(queuedLine))
        #expect(queued.name == "queued" && queued.position == 1 && queued.reason == "global")

        loop.advance(5001)
        let expiredLine = try #require(loop.received(holder).first)
        let expired = try #require(WireEvent(expiredLine))
        #expect(expired.name == "expired" && expired.lease == grant.lease && expired.fence == 1)
        let secondLine = try #require(loop.answer(other))
        #expect(Grant(secondLine)?.fence == 2)
    }
}
