import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Names over the wire: no control character gets through to a log line or a flag file, and
/// the NFC and NFD spellings of a project are two projects.
@Suite("Project names on the wire", .timeLimit(.minutes(1)))
struct NameTests {
    @Test func aProjectNameWithANewlineIsRefusedAndForgesNoLogLine() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let forged = "x\n... info turnstiled: forged line"
        for op in ["acquire", "pause", "report"] {
            var fields: [(String, JSONValue)] = [("project", .text(forged))]
            if op == "report" { fields += [("agent", .text("project-meta")), ("success", .bool(false))] }
            let answer = try client.ask(op, fields)
            #expect(answer.error == "bad_request" && answer.string("field") == "project", "\(op): \(answer.object)")
        }
        let holder = try client.ask("acquire", [("holder", .text("h\u{9B}31m"))])
        #expect(holder.error == "bad_request" && holder.string("field") == "holder", "C1 too")
        #expect(try client.ask("hello").ok)
        #expect(!daemon.log.contains("forged line"))
    }

    @Test func composedAndDecomposedSpellingsAreTwoProjects() throws {
        let daemon = try Daemon()
        let client = try daemon.client()
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(try client.ask("pause", [("project", .text(composed))]).ok)
        #expect(try client.ask("acquire", [("project", .text(composed))]).string("reason") == "paused")
        #expect(try client.ask("acquire", [("project", .text(decomposed))]).ok, "the other spelling is not paused")
        let projects = try client.ask("status")["projects"]?.objectValue
        #expect(projects?.members.filter { $0.key.unicodeScalars.elementsEqual(composed.unicodeScalars) }.count == 1)
        #expect(projects?.members.filter { $0.key.unicodeScalars.elementsEqual(decomposed.unicodeScalars) }.count == 1)
    }
}
