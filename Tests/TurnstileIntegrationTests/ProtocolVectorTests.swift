import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Replays every conversation in `protocol/vectors/` against the real daemon, and checks
/// every line sent and received against `protocol/schema/`, so the documents cannot drift
/// from the code.
///
/// Vector format: `>` a request, `<` an expected answer or event, optionally prefixed by a
/// connection name (`A>`, `B<`; default `A`); `!` a line of the daemon's TOML config; `#` a
/// comment. In expected lines the string `"*"` matches any value, and `"$NAME"` captures the
/// value on first use and must be equal afterwards; in requests `"$NAME"` is replaced by the
/// captured value.
///
/// A vector whose config has the line `! @CLUSTER@` runs against daemons sharing limits through
/// a real 3-member etcd (`EtcdFleet`): the line becomes host `h1`'s `[cluster]` table, and a
/// connection named `NAME@h2` talks to a second daemon, host `h2`, of the same fleet.
@Suite("Protocol vectors", .timeLimit(.minutes(1)))
struct ProtocolVectorTests {
    static let directory = Binaries.packageRoot + "/protocol/vectors"
    static let schemas = Binaries.packageRoot + "/protocol/schema"
    static let clusterMarker = "! @CLUSTER@"

    static var allVectorNames: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".ndjson") }.sorted()
    }

    static func lines(_ name: String) throws -> [String] {
        try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    static func isCluster(_ name: String) -> Bool { (try? lines(name).contains(clusterMarker)) ?? false }
    static var vectorNames: [String] { allVectorNames.filter { !isCluster($0) } }
    static var clusterVectorNames: [String] { allVectorNames.filter(isCluster) }

    @Test func everyOpWithAnAnswerSchemaIsReplayedByAVector() throws {
        let ops = try FileManager.default.contentsOfDirectory(atPath: Self.schemas + "/answers")
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }
        #expect(ops.count >= 20)
        let vectors = try Self.allVectorNames.map { try String(contentsOfFile: Self.directory + "/" + $0, encoding: .utf8) }
            .joined(separator: "\n")
        for op in ops {
            #expect(vectors.contains("\"op\":\"\(op)\""), "no vector sends \(op), so its answer schema is never checked")
        }
    }

    /// The request schemas list exactly the fields the decoder takes (plus `op` and `id`), so
    /// that a field the daemon refuses as unknown is never one the documents promise.
    @Test(arguments: Op.allCases)
    func requestSchemaListsTheFieldsTheDecoderTakes(op: Op) throws {
        let text = try String(contentsOfFile: Self.schemas + "/requests/\(op.rawValue).json", encoding: .utf8)
        let schema = try #require(try JSONParser.parse(text).objectValue)
        let listed = Set(try #require(schema["properties"]?.objectValue).members.map(\.key))
        #expect(listed == Set(["op", "id"] + op.fields.map(\.description)))
        #expect(schema["additionalProperties"]?.boolValue == false)
    }

    @Test(arguments: vectorNames)
    func replay(name: String) throws {
        let lines = try Self.lines(name)
        try Self.replay(name, lines, daemons: ["h1": try Daemon(config: Self.config(lines))])
    }

    @Test(.enabled(if: EtcdFleet.available, EtcdFleet.missing), arguments: clusterVectorNames)
    func replayAcrossHosts(name: String) throws {
        let lines = try Self.lines(name)
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let body = Self.config(lines.filter { $0 != Self.clusterMarker })
        var daemons = ["h1": try fleet.startDaemon(host: "h1", body: body)]
        if lines.contains(where: { $0.hasPrefix("#") == false && $0.contains("@h2>") }) {
            daemons["h2"] = try fleet.startDaemon(host: "h2", body: body)
        }
        try Self.replay(name, lines, daemons: daemons)
    }

    static func config(_ lines: [String]) -> String {
        lines.filter { $0.hasPrefix("!") }.map { String($0.dropFirst()).trimmingCharacters(in: .whitespaces) }
            .joined(separator: "\n")
    }

    static func replay(_ name: String, _ lines: [String], daemons: [String: Daemon]) throws {
        var replay = Replay(daemons: daemons)
        for (number, line) in lines.enumerated() where !line.hasPrefix("#") && !line.hasPrefix("!") {
            if let problem = try replay.step(line) {
                Issue.record("\(name):\(number + 1): \(problem)")
                return
            }
        }
    }
}

/// The state of one replay: connections, captures, which op each id was.
struct Replay {
    /// The daemons by host; connections go to `h1` unless named `NAME@HOST`.
    let daemons: [String: Daemon]
    var connections: [String: RawConnection] = [:]
    var captures: [String: JSONValue] = [:]
    var ops: [String: [String: String]] = [:]
    /// Requests waiting for their answer before being checked against their schema: only a
    /// request the daemon accepted must conform (the vectors also send bad ones on purpose).
    var unchecked: [String: [String: JSONObject]] = [:]

    init(daemons: [String: Daemon]) {
        self.daemons = daemons
    }

    /// Runs one vector line. - Returns: a problem, or nil.
    mutating func step(_ line: String) throws -> String? {
        guard let arrow = line.firstIndex(where: { $0 == ">" || $0 == "<" }) else { return "no > or <" }
        let name = line[..<arrow].isEmpty ? "A" : String(line[..<arrow])
        let body = line[line.index(after: arrow)...].trimmingCharacters(in: .whitespaces)
        if connections[name] == nil {
            let host = name.split(separator: "@").dropFirst().first.map(String.init) ?? "h1"
            guard let daemon = daemons[host] else { return "no daemon for host \(host)" }
            connections[name] = try RawConnection(daemon)
        }
        let connection = connections[name]!
        if line[arrow] == ">" {
            var text = body
            for (key, value) in captures {
                var writer = JSONWriter()
                writer.value(value)
                text = text.replacingOccurrences(of: "\"$\(key)\"", with: String(decoding: writer.bytes, as: UTF8.self))
            }
            if let request = try? JSONParser.parse(text).objectValue, let op = request["op"]?.stringValue,
               let id = request["id"] {
                ops[name, default: [:]][key(id)] = op
                unchecked[name, default: [:]][key(id)] = request
            }
            try connection.send(text + "\n")
            return nil
        }
        guard let received = try connection.receive() else { return "no line from the daemon within 10 s" }
        let expected = try JSONParser.parse(body)
        if let mismatch = match(.object(received), expected, at: "$") {
            var writer = JSONWriter()
            writer.value(.object(received))
            return "\(mismatch)\n  got: \(String(decoding: writer.bytes, as: UTF8.self))"
        }
        return validateAnswer(received, connection: name)
    }

    private func key(_ id: JSONValue) -> String { "\(id)" }

    private mutating func validateAnswer(_ answer: JSONObject, connection: String) -> String? {
        if let event = answer["event"]?.stringValue, answer["ok"] == nil {
            return validate(.object(answer), "events/\(event).json").map { "event: \($0)" }
        }
        if answer["ok"]?.boolValue == false { return validate(.object(answer), "error.json").map { "error: \($0)" } }
        guard let id = answer["id"], let op = ops[connection]?[key(id)] else { return nil }
        let idKey = key(id)
        let request = unchecked[connection]?[idKey]
        unchecked[connection]?[idKey] = nil
        if let request, let problem = validate(.object(request), "requests/\(op).json") { return "request: \(problem)" }
        return validate(.object(answer), "answers/\(op).json").map { "answer: \($0)" }
    }

    private func validate(_ value: JSONValue, _ schema: String) -> String? {
        let path = ProtocolVectorTests.schemas + "/" + schema
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "no schema \(schema)" }
        guard let parsed = try? JSONParser.parse(text).objectValue else { return "schema \(schema) is not a JSON object" }
        let problems = SchemaValidator.problems(value, parsed)
        return problems.isEmpty ? nil : "\(schema): " + problems.joined(separator: "; ")
    }

    /// Matches a received value against an expected one with wildcards and captures.
    mutating func match(_ actual: JSONValue, _ expected: JSONValue, at path: String) -> String? {
        if case .string(let text) = expected {
            if text == "*" { return nil }
            if text.hasPrefix("$"), text.count > 1 {
                let name = String(text.dropFirst())
                if let captured = captures[name] {
                    return SchemaValidator.equal(actual, captured) ? nil : "\(path): expected \(name) = \(captured), got \(actual)"
                }
                captures[name] = actual
                return nil
            }
        }
        switch (actual, expected) {
        case (.object(let a), .object(let e)):
            let extra = a.members.map(\.key).filter { e[$0] == nil }
            if !extra.isEmpty { return "\(path): unexpected \(extra.joined(separator: ", "))" }
            for member in e.members {
                guard let value = a[member.key] else { return "\(path): missing \(member.key)" }
                if let problem = match(value, member.value, at: "\(path).\(member.key)") { return problem }
            }
            return nil
        case (.array(let a), .array(let e)):
            guard a.count == e.count else { return "\(path): \(a.count) elements, expected \(e.count)" }
            for (index, pair) in zip(a, e).enumerated() {
                if let problem = match(pair.0, pair.1, at: "\(path)[\(index)]") { return problem }
            }
            return nil
        default:
            return SchemaValidator.equal(actual, expected) ? nil : "\(path): expected \(expected), got \(actual)"
        }
    }
}
