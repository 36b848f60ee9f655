import TurnstileProtocol

/// A daemon's answer: the JSON object, with accessors for the common fields.
public struct Answer: Sendable {
    /// The whole line, parsed.
    public let object: JSONObject

    public init(_ object: JSONObject) {
        self.object = object
    }

    /// Whether the daemon said yes.
    public var ok: Bool { object["ok"]?.boolValue == true }
    /// The error code of a failure.
    public var error: String? { object["error"]?.stringValue }
    /// The human message of a failure.
    public var message: String? { object["message"]?.stringValue }
    /// A string field.
    public func string(_ key: String) -> String? { object[key]?.stringValue }
    /// An integer field.
    public func int(_ key: String) -> Int64? { object[key]?.numberValue?.int64 }
    /// A field.
    public subscript(key: String) -> JSONValue? { object[key] }
    /// The grant, if it is one.
    public var grant: Grant? { Grant(object) }
    /// The failure, if it is one.
    public var failure: WireFailure? { WireFailure(object) }
}

/// A connection to `turnstiled` that sends requests and matches answers by `id`, keeping
/// events (and answers to other requests) aside until asked for.
public final class TurnstileClient {
    /// The socket.
    public let stream: SocketStream
    private var nextID = 1
    private var events: [JSONObject] = []
    private var answers: [Int: JSONObject] = [:]

    /// Connects to the daemon.
    /// - Parameter socketPath: the socket (see `DefaultPaths.socket`).
    public init(socketPath: String) throws(ClientError) {
        stream = try SocketStream(path: socketPath)
    }

    /// Sends a typed request without waiting for its answer.
    /// - Returns: the `id` it was given.
    @discardableResult
    public func send(_ request: ClientRequest) throws(ClientError) -> Int {
        let id = nextID
        nextID += 1
        var writer = JSONWriter()
        request.encode(id: id, into: &writer)
        try stream.write(writer.bytes)
        return id
    }

    /// Sends a typed request and waits for its answer.
    /// - Parameter timeoutMilliseconds: -1 waits forever.
    public func call(_ request: ClientRequest, timeoutMilliseconds: Int32 = -1) throws(ClientError) -> Answer {
        let id = try send(request)
        return try answer(to: id, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Sends any op with any fields, typed or not: for tests and tools that must send what no
    /// typed request can (a misspelt field, a wrong type).
    /// - Returns: the `id` it was given.
    @discardableResult
    public func send(_ op: String, _ fields: [(String, JSONValue)] = []) throws(ClientError) -> Int {
        let id = nextID
        nextID += 1
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("id")
        writer.int(id)
        writer.key("op")
        writer.string(op)
        for (key, value) in fields {
            writer.dynamicKey(key)
            writer.value(value)
        }
        writer.endObject()
        writer.newline()
        try stream.write(writer.bytes)
        return id
    }

    /// Sends any op with any fields and waits for its answer (see `send(_:_:)`).
    /// - Parameter timeoutMilliseconds: -1 waits forever.
    public func call(_ op: String, _ fields: [(String, JSONValue)] = [],
                     timeoutMilliseconds: Int32 = -1) throws(ClientError) -> Answer {
        let id = try send(op, fields)
        return try answer(to: id, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Waits for the answer to request `id`, setting aside events and other answers.
    public func answer(to id: Int, timeoutMilliseconds: Int32 = -1) throws(ClientError) -> Answer {
        if let kept = answers.removeValue(forKey: id) { return Answer(kept) }
        let deadline = timeoutMilliseconds >= 0 ? SocketStream.monotonicMilliseconds() + Int64(timeoutMilliseconds) : nil
        while true {
            let left = deadline.map { Int32(clamping: max(0, $0 - SocketStream.monotonicMilliseconds())) } ?? -1
            guard let object = try nextObject(timeoutMilliseconds: left) else { throw .timedOut }
            if object["event"] != nil && object["ok"] == nil {
                events.append(object)
            } else if let answerID = object["id"]?.numberValue?.int64.map(Int.init), answerID != id {
                answers[answerID] = object
            } else {
                return Answer(object)
            }
        }
    }

    /// The next event (an object with `event` and no `ok`), waiting up to the timeout.
    /// - Returns: nil on timeout.
    public func nextEvent(timeoutMilliseconds: Int32 = -1) throws(ClientError) -> JSONObject? {
        if !events.isEmpty { return events.removeFirst() }
        let deadline = timeoutMilliseconds >= 0 ? SocketStream.monotonicMilliseconds() + Int64(timeoutMilliseconds) : nil
        while true {
            let left = deadline.map { Int32(clamping: max(0, $0 - SocketStream.monotonicMilliseconds())) } ?? -1
            guard let object = try nextObject(timeoutMilliseconds: left) else { return nil }
            if object["event"] != nil && object["ok"] == nil { return object }
            if let answerID = object["id"]?.numberValue?.int64.map(Int.init) { answers[answerID] = object }
        }
    }

    /// The next line from the daemon, answer or event, in arrival order (after any set aside
    /// by `answer(to:)` or `nextEvent`): for callers that do their own matching.
    /// - Returns: nil on timeout.
    public func nextMessage(timeoutMilliseconds: Int32) throws(ClientError) -> JSONObject? {
        if !events.isEmpty { return events.removeFirst() }
        if let first = answers.keys.min() { return answers.removeValue(forKey: first) }
        return try nextObject(timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Whether a message can be read without waiting.
    public var hasPendingMessage: Bool { !events.isEmpty || !answers.isEmpty || stream.hasBufferedLine }

    /// Closes the connection.
    public func close() { stream.close() }

    private func nextObject(timeoutMilliseconds: Int32) throws(ClientError) -> JSONObject? {
        guard let line = try stream.readLine(timeoutMilliseconds: timeoutMilliseconds) else { return nil }
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw .protocolViolation("\(error)")
        }
        guard let object = value.objectValue else { throw .protocolViolation("a line that is not an object") }
        return object
    }
}

extension JSONValue {
    /// A string value.
    public static func text(_ value: String) -> JSONValue { .string(value) }
    /// A list of strings.
    public static func strings(_ values: [String]) -> JSONValue { .array(values.map { .string($0) }) }
}
