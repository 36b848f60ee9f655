import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// protocol/PROTOCOL.md: every bad input is answered (or cut off) with a clear error, and loses nothing:
/// other connections and leases are undisturbed, the daemon keeps answering.
@Suite("Bad input", .timeLimit(.minutes(1)))
struct BadInputTests {
    /// A daemon with one lease held by a bystander, to prove bad input disturbs nothing.
    struct Bystander {
        let daemon: Daemon
        let client: TurnstileClient
        let token: JSONValue

        init(config: String = "") throws {
            daemon = try Daemon(config: config)
            client = try daemon.client()
            token = try client.ask("acquire", [("holder", .text("bystander"))])["lease"]!
        }

        /// The bystander's lease is intact and the daemon answers.
        func undisturbed() throws -> Bool {
            try client.ask("heartbeat", [("lease", token)]).ok && client.ask("hello").ok
        }
    }

    @Test func malformedJSONIsAnsweredAndTheConnectionStaysUsable() throws {
        let world = try Bystander()
        let raw = try RawConnection(world.daemon)
        for line in ["{", "not json", #"{"op":"hello",}"#, #"{"op":'hello'}"#, "[1,2", #"{"op":"hello"} trailing"#] {
            try raw.send(line + "\n")
            let answer = try raw.receive()
            #expect(answer?["error"]?.stringValue == "bad_json", "\(line)")
            #expect(answer?["message"]?.stringValue?.isEmpty == false)
        }
        try raw.send("{\"id\":7,\"op\":\"hello\"}\r\n")
        #expect(try raw.receive()?["ok"]?.boolValue == true, "still usable; \\r\\n accepted")
        #expect(try world.undisturbed())
    }

    @Test func invalidUTF8IsBadJSON() throws {
        let world = try Bystander()
        let raw = try RawConnection(world.daemon)
        try raw.send(bytes: Array(#"{"op":"hello","client":""#.utf8) + [0xC3, 0x28] + Array("\"}\n".utf8))
        #expect(try raw.receive()?["error"]?.stringValue == "bad_json")
        try raw.send(bytes: [0xFF, 0xFE, 0x0A])
        #expect(try raw.receive()?["error"]?.stringValue == "bad_json")
        #expect(try world.undisturbed())
    }

    @Test func nonObjectsAreBadRequests() throws {
        let world = try Bystander()
        let raw = try RawConnection(world.daemon)
        for line in ["[]", "42", #""hello""#, "null", "true"] {
            try raw.send(line + "\n")
            #expect(try raw.receive()?["error"]?.stringValue == "bad_request", "\(line)")
        }
        #expect(try world.undisturbed())
    }

    @Test func unknownAndMissingOps() throws {
        let world = try Bystander()
        let client = try world.daemon.client()
        #expect(try client.ask("frobnicate").error == "unknown_op")
        let raw = try RawConnection(world.daemon)
        try raw.send(#"{"id":1}"# + "\n")
        let missing = try raw.receive()
        #expect(missing?["error"]?.stringValue == "bad_request" && missing?["field"]?.stringValue == "op")
        try raw.send(#"{"id":2,"op":5}"# + "\n")
        #expect(try raw.receive()?["field"]?.stringValue == "op")
        #expect(try world.undisturbed())
    }

    static let wrongFields: [(op: String, field: String, value: String)] = [
        ("acquire", "project", "5"), ("acquire", "project", #""a/b""#), ("acquire", "project", #""""#),
        ("acquire", "mode", #""weekly""#), ("acquire", "wait_ms", "-1"), ("acquire", "wait_ms", "1.5"),
        ("acquire", "ttl_ms", "50"), ("acquire", "ttl_ms", "86400001"), ("acquire", "pid", #""me""#),
        ("acquire", "pid", "0"), ("acquire", "detach", #""yes""#), ("acquire", "priority", "1.5"),
        ("acquire", "model", #""not-a-configured-model""#), ("acquire", "model", #""/x""#),
        ("acquire", "workspace", #""""#), ("acquire", "holder", "[]"), ("acquire", "providers", "7"),
        ("acquire", "tenant", #""""#), ("heartbeat", "lease", "7"), ("heartbeat", "lease", #""abc""#),
        ("release", "lease", "null"), ("attach", "pid", "-3"), ("report", "success", #""no""#),
        ("throttle", "retry_after_ms", "-5"), ("throttle", "retry_after", "[1]"), ("record", "latency_ms", #""slow""#),
        ("record", "tokens", "3"), ("usage", "session_id", "1"), ("pause", "project", #"".""#),
        ("pause", "project", #""__global__""#), ("revoke", "fence", "0"), ("cancel", "target", "{}"),
    ]

    @Test(arguments: 0..<wrongFields.count)
    func wrongTypesNameTheField(index: Int) throws {
        let (op, field, value) = Self.wrongFields[index]
        let world = try Bystander()
        let raw = try RawConnection(world.daemon)
        var extra = ""
        switch op {
        case "heartbeat", "release", "attach": if field != "lease" { extra = #","lease":"\#(world.token.stringValue!)""# }
        case "report": extra = #","project":"p","agent":"project-meta""#
        case "throttle": extra = #","provider":"openai""#
        case "record": extra = #","model":"m","success":true"# + (field == "latency_ms" ? "" : #","latency_ms":1"#)
        default: break
        }
        try raw.send(#"{"id":1,"op":"\#(op)","\#(field)":\#(value)\#(extra)}"# + "\n")
        let answer = try #require(try raw.receive())
        #expect(answer["ok"]?.boolValue == false)
        #expect(answer["error"]?.stringValue == "bad_request", "\(op).\(field)=\(value): \(answer)")
        #expect(answer["field"]?.stringValue == field, "\(op).\(field)=\(value): \(answer)")
        #expect(answer["id"]?.numberValue?.int64 == 1)
        #expect(try world.undisturbed())
    }

    @Test func anOverLongLineIsAnsweredThenCutOff() throws {
        let world = try Bystander()
        let raw = try RawConnection(world.daemon)
        try raw.send(bytes: Array(#"{"op":"hello","client":""#.utf8) + [UInt8](repeating: 0x61, count: 70_000))
        let answer = try raw.receive()
        #expect(answer?["error"]?.stringValue == "line_too_long")
        #expect(raw.closedByDaemon(), "then the connection is closed")
        #expect(try world.undisturbed())
    }

    @Test func aLineOfExactly64KiBIsAccepted() throws {
        let world = try Bystander()
        let raw = try RawConnection(world.daemon)
        let prefix = #"{"op":"hello","client":""#
        let suffix = #""}"#
        let padding = LineFramer.lineBytesMax - prefix.utf8.count - suffix.utf8.count
        try raw.send(prefix + String(repeating: " ", count: 0) + String(repeating: "a", count: padding) + suffix + "\n")
        let answer = try raw.receive()
        #expect(answer?["error"]?.stringValue == "bad_request", "the 256-byte label limit speaks, not the line limit")
        #expect(answer?["field"]?.stringValue == "client")
    }

    @Test func aClientThatVanishesMidLineDisturbsNothing() throws {
        let world = try Bystander()
        let holder = try world.daemon.client()
        _ = try holder.ask("acquire", [("holder", .text("half-liner"))])
        try holder.stream.write(Array(#"{"op":"acquire","proj"#.utf8))
        holder.close()
        let watcher = try world.daemon.client()
        let status = try watcher.ask("status")
        let holders = status["leases"]?.arrayValue?.compactMap { $0.objectValue?["holder"]?.stringValue } ?? []
        #expect(holders == ["bystander"], "the vanished client's lease is released, the bystander's kept")
        #expect(try world.undisturbed())
    }

    @Test func tooManyPendingRequestsOnOneConnection() throws {
        let world = try Bystander(config: "[limits]\nglobal = 1\n[server]\nmax_pending_per_connection = 2\n")
        let client = try world.daemon.client()
        let first = try client.send("acquire", [("wait_ms", .integer(60_000))])
        let second = try client.send("acquire", [("wait_ms", .integer(60_000))])
        #expect(try client.ask("acquire", [("wait_ms", .integer(60_000))]).error == "too_many")
        _ = (first, second)
        #expect(try world.undisturbed())
    }

    @Test func tooManyConnections() throws {
        let daemon = try Daemon(config: "[server]\nmax_connections = 2\n")
        let one = try daemon.client()
        let two = try daemon.client()
        #expect(try one.ask("hello").ok && two.ask("hello").ok)
        let three = try RawConnection(daemon)
        #expect(try three.receive()?["error"]?.stringValue == "too_many")
        #expect(three.closedByDaemon())
        three.close()
        two.close()
        var open: Int64? = 3
        for _ in 0..<10_000 where open != 1 {
            open = try one.ask("status")["server"]?.objectValue?["connections"]?.numberValue?.int64
        }
        #expect(open == 1)
        let four = try daemon.client()
        #expect(try four.ask("hello").ok, "a freed place can be taken again")
    }

    @Test func aClientThatNeverReadsIsCutOffAndItsLeasesReleased() throws {
        let world = try Bystander(config: "[server]\nmax_output_bytes = 65536\n")
        let greedy = try RawConnection(world.daemon)
        try greedy.send(#"{"op":"acquire","holder":"greedy"}"# + "\n")
        let request = String(repeating: #"{"op":"status"}"# + "\n", count: 2000)
        do {
            for _ in 0..<200 { try greedy.send(request) }
        } catch {
            // The daemon cut us off mid-flood: exactly what is tested.
        }
        let watcher = try world.daemon.client()
        var holders: [String] = []
        for _ in 0..<100 {
            let status = try watcher.ask("status")
            holders = status["leases"]?.arrayValue?.compactMap { $0.objectValue?["holder"]?.stringValue } ?? []
            if holders == ["bystander"] { break }
        }
        #expect(holders == ["bystander"])
        #expect(world.daemon.logShows("cutting off a client that does not read"))
        #expect(try world.undisturbed())
    }
}
