import TurnstileCore
import TurnstileProtocol

/// One request being handled: where to answer and with which `id`.
struct RequestContext {
    let connection: SessionConnection
    /// The raw bytes of the request's `id`, echoed verbatim.
    let id: ArraySlice<UInt8>?
    /// The parsed `id`, for the key `cancel` finds a waiting request by.
    let idValue: JSONValue?

    /// The key `cancel`'s `target` is matched against (computed only for requests that wait).
    var key: RequestKey? { idValue.map(RequestKey.init) }
}

extension Session {
    /// Handles one line: parse, validate, authorise, act, answer. Bad input is answered and
    /// never disturbs anything else.
    func handleLine(_ line: UnsafeBufferPointer<UInt8>, on connection: SessionConnection) {
        let kind: JSONKind
        do {
            kind = try JSONParser.scanObject(line, members: &memberScratch)
        } catch {
            send(to: connection) { Answers.failure(&$0, id: nil, code: .badJSON, message: "not JSON: \(error)") }
            return
        }
        guard kind == .object else {
            send(to: connection) {
                Answers.failure(&$0, id: nil, code: .badRequest, message: "a request is a JSON object, not \(kind.typeName)")
            }
            return
        }
        let object = JSONObjectView(bytes: line, members: memberScratch)
        var context = RequestContext(connection: connection, id: nil, idValue: nil)
        if let id = object.member("id") {
            guard id.kind.isScalar else {
                send(to: connection) {
                    Answers.failure(&$0, id: nil, code: .badRequest, message: "id must be a string, number, boolean or null",
                                    field: "id")
                }
                return
            }
            context = RequestContext(connection: connection, id: ArraySlice(object.raw(id)), idValue: object.value(id))
        }
        let request: Request
        do {
            request = try RequestDecoder.decode(object, resolveModel: { self.broker.resolveModel($0) })
        } catch {
            fail(context, error.code, error.message, field: error.field)
            return
        }
        if stopping {
            fail(context, .shuttingDown, "turnstiled is stopping")
            return
        }
        if request.op.isAdmin && !connection.isAdmin {
            fail(context, .forbidden, "\(request.op.rawValue) is for the daemon's owner, root and admin_uids (you are uid \(connection.uid))")
            return
        }
        perform(request, context)
        processEffects()
        requestInFlight = nil
    }

    /// Acts on a decoded request.
    private func perform(_ request: Request, _ context: RequestContext) {
        switch request {
        case .acquire(let acquireRequest, let notify): acquire(acquireRequest, notify: notify, context)
        case .heartbeat(let tokens, let multiple): heartbeat(tokens, multiple: multiple, context)
        case .release(let token, let exit): release(token, exit: exit, context)
        case .attach(let token, let pid, let pgid): attach(token, pid: pid, pgid: pgid, context)
        case .cancel(let target): cancel(target, context)
        case .cancelHolder(let holder): cancel(holder: holder, context)
        case .park(let token): park(token, context)
        case .unpark(let token, let wait, let notify): unpark(token, waitMilliseconds: wait, notify: notify, context)
        case .revoke(let reference): revoke(reference, context)
        case .hello: hello(context)
        case .status: status(context)
        case .pause(let project): pause(project, context)
        case .resume(let project): resume(project, context)
        case .report(let project, let agent, let success): report(project: project, agent: agent, success: success, context)
        case .throttle(let provider, let tenant, let retryAfter):
            throttle(provider: provider, tenant: tenant, retryAfter: retryAfter, context)
        case .clearThrottle(let provider, let tenant):
            clearThrottle(provider: provider, tenant: tenant, context)
        case .unflag(let model):
            unflag(model: model, context)
        case .record(let event): record(event, context)
        case .performance(let model): performance(model, context)
        case .usage(let session): usage(session, context)
        case .metrics: metrics(context)
        case .watch: watch(context)
        case .reload: reload(context)
        }
    }

    /// Answers a failure.
    func fail(_ context: RequestContext, _ code: ErrorCode, _ message: String, field: String? = nil, refusal: Refusal? = nil) {
        send(to: context.connection) {
            Answers.failure(&$0, id: context.id, code: code, message: message, field: field, refusal: refusal)
        }
    }

    /// Answers `{"id":…,"ok":true, …}` with extra fields.
    func succeed(_ context: RequestContext, _ fields: (inout JSONWriter) -> Void = { _ in }) {
        send(to: context.connection) { w in
            Answers.beginSuccess(&w, id: context.id)
            fields(&w)
            Answers.close(&w)
        }
    }

    /// Answers a broker `LeaseError`.
    func fail(_ context: RequestContext, _ error: LeaseError) {
        switch error {
        case .notFound: fail(context, .notFound, "no live lease with that token")
        case .badRequest(let field, let message): fail(context, .badRequest, message, field: field)
        case .overBound(let bound): fail(context, .tooMany, Self.describe(bound))
        }
    }

    /// The message of a `too_many` answer.
    static func describe(_ bound: ResourceBound) -> String {
        switch bound {
        case .leasesPerConnection(let limit): "this connection already holds \(limit) leases"
        case .waiters(let limit): "the queue is full (\(limit) waiters)"
        case .pendingPerConnection(let limit): "this connection already waits on \(limit) requests"
        }
    }
}
