import Testing
import TurnstileCore
@testable import TurnstileProtocol
@testable import TurnstileSession

/// A field the op does not know is a `bad_request` naming it: `"projct"` is a typo, not an
/// extension (protocol/PROTOCOL.md §3).
@Suite("Requests: unknown fields are refused by name")
struct StrictFieldsTests {
    private func error(_ line: String) throws -> RequestError? {
        let both = try #require(RequestDecoderTests.decodeBothWays(line))
        #expect(both.scanned == both.built, "\(line)")
        if case .failure(let error) = both.scanned { return error }
        return nil
    }

    @Test func aTypoIsNamed() throws {
        let refused = try #require(try error(#"{"op":"acquire","projct":"a"}"#))
        #expect(refused.code == .badRequest)
        #expect(refused.field == "projct")
        #expect(refused.message.contains("projct"))
    }

    @Test func aFieldOfAnotherOpIsUnknownHere() throws {
        #expect(try error(#"{"op":"release","lease":"0123456789abcdef0123456789abcdef","wait_ms":5}"#)?.field == "wait_ms")
        #expect(try error(#"{"op":"status","project":"a"}"#)?.field == "project")
    }

    @Test func anEscapedKeyIsComparedUnescaped() throws {
        #expect(try error(#"{"op":"acquire","pr\u006fject":"a"}"#) == nil)
        #expect(try error(#"{"op":"acquire","pr\u006fjct":"a"}"#)?.field == "projct")
    }

    @Test func cancelTakesATargetOrAHolderNotBoth() throws {
        #expect(try error(#"{"op":"cancel","target":1,"holder":"h"}"#)?.field == "holder")
        #expect(try error(#"{"op":"cancel","holder":"h"}"#) == nil)
        #expect(try error(#"{"op":"cancel","target":"w"}"#) == nil)
    }

    @Test func opAndIdAreAlwaysKnown() throws {
        #expect(try error(#"{"id":{"any":"scalar or not"},"op":"status"}"#) == nil)
    }

    @Test func nestedTokenCountsAreStrictToo() throws {
        let refused = try error(#"{"op":"record","model":"a/b","latency_ms":1,"success":true,"tokens":{"inptu":3}}"#)
        #expect(refused?.field == "tokens.inptu")
    }

    @Test func aHugeUnknownKeyIsCutInTheAnswer() throws {
        let key = String(repeating: "k", count: 10_000)
        let refused = try #require(try error(#"{"op":"status",""# + key + #"":1}"#))
        #expect(refused.field!.utf8.count < 80)
    }

    /// Every field each op lists decodes without an "unknown field" error (a wrong value may
    /// still be refused, but never as unknown).
    @Test(arguments: Op.allCases)
    func everyListedFieldIsKnown(op: Op) throws {
        for field in op.fields {
            let line = #"{"op":""# + op.rawValue + #"",""# + field.description + #"":null}"#
            if let refused = try error(line) { #expect(!refused.message.contains("unknown field"), "\(line)") }
        }
    }
}
