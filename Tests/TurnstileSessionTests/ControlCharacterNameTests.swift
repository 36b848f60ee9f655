import Testing
import TurnstileCore
@testable import TurnstileProtocol
@testable import TurnstileSession

/// Names a client sends reach log lines, status tables and file names: a control character
/// (C0, DEL or C1) in any of them is a `bad_request` naming the field.
@Suite("Control characters in names are refused")
struct ControlCharacterNameTests {
    /// One character of each class, at both ends of each range, as JSON escapes.
    static let controls = [#"\u0000"#, #"\u0001"#, #"\n"#, #"\r"#, #"\t"#, #"\u001b"#, #"\u001f"#, #"\u007f"#,
                           #"\u0080"#, #"\u0085"#, #"\u009b"#, #"\u009f"#]

    /// Each named field in a request that is otherwise valid, with `%` where the name goes.
    static let fields: [(field: String, line: String)] = [
        ("project", #"{"op":"acquire","project":"a%b"}"#),
        ("provider", #"{"op":"throttle","provider":"a%b","retry_after_ms":5}"#),
        ("tenant", #"{"op":"acquire","tenant":"a%b"}"#),
        ("tenant", #"{"op":"throttle","provider":"p","tenant":"a%b","retry_after_ms":5}"#),
        ("model", #"{"op":"acquire","model":"a/b%c"}"#),
        ("model", #"{"op":"record","model":"a%b","latency_ms":1,"success":true}"#),
        ("model", #"{"op":"performance","model":"a%b"}"#),
        ("holder", #"{"op":"acquire","holder":"a%b"}"#),
        ("agent", #"{"op":"report","project":"p","agent":"a%b","success":true}"#),
        ("project", #"{"op":"report","project":"a%b","agent":"x","success":true}"#),
        ("project", #"{"op":"pause","project":"a%b"}"#),
        ("project", #"{"op":"resume","project":"a%b"}"#),
        ("workspace", #"{"op":"acquire","workspace":"/w/a%b"}"#),
        ("session_id", #"{"op":"record","model":"m","session_id":"a%b","latency_ms":1,"success":true}"#),
        ("session_id", #"{"op":"usage","session_id":"a%b"}"#),
        ("providers", #"{"op":"acquire","providers":["ok","a%b"]}"#),
        ("providers", #"{"op":"acquire","providers":"ok, a%b"}"#),
        ("fallback", #"{"op":"acquire","fallback":["p/ok","p/a%b"]}"#),
        ("fallback", #"{"op":"acquire","fallback":"p/ok, p/a%b"}"#),
        ("client", #"{"op":"hello","client":"a%b"}"#),
    ]

    @Test(arguments: fields.indices)
    func everyControlCharacterClassIsRefusedInEveryNamedField(index: Int) {
        let (field, template) = Self.fields[index]
        for control in Self.controls {
            let line = template.replacingOccurrences(of: "%", with: control)
            guard let decoded = RequestDecoderTests.decodeBothWays(line) else {
                Issue.record("not an object: \(line)")
                continue
            }
            for result in [decoded.scanned, decoded.built] {
                guard case .failure(let error) = result else {
                    Issue.record("accepted \(line)")
                    continue
                }
                #expect(error.code == .badRequest && error.field == field, "\(line): \(error)")
            }
        }
    }

    @Test(arguments: [#"caf\u00e9"#, #"\u00a0nbsp"#, #"\u00c2x"#, "日本", #"e\u0301"#, ".x", #"\u2028"#])
    func printableNamesStayValid(name: String) {
        let line = #"{"op":"acquire","project":"%","holder":"%","tenant":"%"}"#.replacingOccurrences(of: "%", with: name)
        guard case .success? = RequestDecoderTests.decodeBothWays(line)?.scanned else {
            Issue.record("refused \(line)")
            return
        }
    }

    @Test func theByteScanFindsC1OnlyAfterItsLeadByte() {
        #expect(Names.containsControl("\u{85}"))
        #expect(!Names.containsControl("\u{A0}\u{C2}\u{100}"), "0xC2 0xA0 and 0xC3 0x82 are printable")
        #expect(Names.containsControl("\u{C2}\u{9F}"), "U+00C2 then U+009F: the second is C1")
        #expect(Names.containsControl("a\u{7F}"))
    }
}
