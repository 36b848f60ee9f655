import Foundation
import Testing
@testable import TurnstileProtocol

// MARK: - Rejections

/// One input the parser must refuse: where, and a word its message must contain.
struct Rejection: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let offset: Int
    let fragment: String

    init(_ name: String, _ bytes: [UInt8], at offset: Int, _ fragment: String) {
        self.name = name
        self.bytes = bytes
        self.offset = offset
        self.fragment = fragment
    }

    init(_ text: String, at offset: Int, _ fragment: String) {
        self.init(text, utf8(text), at: offset, fragment)
    }

    var testDescription: String { name }
}

@Suite("JSONParser: rejections")
struct JSONParserRejectionTests {
    static let utf8Rejections: [Rejection] = [
        Rejection("overlong C0 80", [0x22, 0xC0, 0x80, 0x22], at: 1, "UTF-8"),
        Rejection("overlong C1 BF", [0x22, 0xC1, 0xBF, 0x22], at: 1, "UTF-8"),
        Rejection("overlong E0 80 80", [0x22, 0xE0, 0x80, 0x80, 0x22], at: 1, "UTF-8"),
        Rejection("overlong E0 9F BF", [0x22, 0xE0, 0x9F, 0xBF, 0x22], at: 1, "UTF-8"),
        Rejection("overlong F0 80 80 80", [0x22, 0xF0, 0x80, 0x80, 0x80, 0x22], at: 1, "UTF-8"),
        Rejection("overlong F0 8F BF BF", [0x22, 0xF0, 0x8F, 0xBF, 0xBF, 0x22], at: 1, "UTF-8"),
        Rejection("encoded high surrogate ED A0 80", [0x22, 0xED, 0xA0, 0x80, 0x22], at: 1, "UTF-8"),
        Rejection("encoded low surrogate ED BF BF", [0x22, 0xED, 0xBF, 0xBF, 0x22], at: 1, "UTF-8"),
        Rejection("above U+10FFFF F4 90 80 80", [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], at: 1, "UTF-8"),
        Rejection("lone continuation 80", [0x22, 0x80, 0x22], at: 1, "UTF-8"),
        Rejection("lone continuation BF after text", [0x22, 0x61, 0x62, 0xBF, 0x22], at: 3, "UTF-8"),
        Rejection("bad second byte C3 41", [0x22, 0xC3, 0x41, 0x22], at: 1, "UTF-8"),
        Rejection("bad third byte E2 82 41", [0x22, 0xE2, 0x82, 0x41, 0x22], at: 1, "UTF-8"),
        Rejection("bad fourth byte F0 9F 98 C0", [0x22, 0xF0, 0x9F, 0x98, 0xC0, 0x22], at: 1, "UTF-8"),
        Rejection("truncated E2 82 before quote", [0x22, 0xE2, 0x82, 0x22], at: 1, "UTF-8"),
        Rejection("truncated F0 9F 98 before quote", [0x22, 0xF0, 0x9F, 0x98, 0x22], at: 1, "UTF-8"),
        Rejection("truncated C3 at end", [0x22, 0x61, 0xC3], at: 2, "UTF-8"),
        Rejection("truncated F0 9F at end", [0x22, 0xF0, 0x9F], at: 1, "UTF-8"),
        Rejection("invalid UTF-8 in a key", [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D], at: 2, "UTF-8"),
        Rejection("raw non-ASCII outside a string", [0xC3, 0xA9], at: 0, "UTF-8"),
        Rejection("byte order mark", [0xEF, 0xBB, 0xBF, 0x31], at: 0, "UTF-8"),
    ] + (0xF5...0xFF).map { lead in
        Rejection("lead byte \(String(lead, radix: 16, uppercase: true))", [0x22, UInt8(lead), 0x80, 0x80, 0x80, 0x22], at: 1, "UTF-8")
    }

    static let stringRejections: [Rejection] = [
        Rejection(#""\ud800""#, at: 7, "surrogate"),
        Rejection(#""\udbff x""#, at: 7, "surrogate"),
        Rejection(#""\udc00""#, at: 7, "surrogate"),
        Rejection(#""\udfff\ud800""#, at: 7, "surrogate"),
        Rejection(#""\ud800\u0041""#, at: 13, "surrogate"),
        Rejection(#""\ud800\ud800""#, at: 13, "surrogate"),
        Rejection(#""\ud800\n""#, at: 7, "surrogate"),
        Rejection("control 01", [0x22, 0x61, 0x01, 0x62, 0x22], at: 2, "control"),
        Rejection("control 00", [0x22, 0x00, 0x22], at: 1, "control"),
        Rejection("control 1F", [0x22, 0x1F, 0x22], at: 1, "control"),
        Rejection("raw tab in a string", [0x22, 0x61, 0x09, 0x22], at: 2, "control"),
        Rejection("raw newline in a string", [0x22, 0x61, 0x0A, 0x22], at: 2, "control"),
        Rejection("raw carriage return in a key", utf8("{\"a\r\":1}"), at: 3, "control"),
        Rejection(#""\x""#, at: 2, "escape"),
        Rejection(#""\U0041""#, at: 2, "escape"),
        Rejection(#""\'""#, at: 2, "escape"),
        Rejection(#""\u12""#, at: 3, "\\u"),
        Rejection(#""\u12G4""#, at: 5, "hex"),
        Rejection(#""\u-123""#, at: 3, "hex"),
        Rejection(#""abc"#, at: 4, "unterminated"),
        Rejection("\"", at: 1, "unterminated"),
        Rejection(#"{"a"#, at: 3, "unterminated"),
        Rejection(#"["abc\"]"#, at: 8, "unterminated"),
        Rejection(#""abc\"#, at: 5, "unterminated"),
        Rejection("'single'", at: 0, "unexpected character"),
        Rejection("{'a':1}", at: 1, "member name"),
    ]

    static let numberRejections: [Rejection] = [
        Rejection("01", at: 1, "leading zero"),
        Rejection("00", at: 1, "leading zero"),
        Rejection("-01", at: 2, "leading zero"),
        Rejection("[012]", at: 2, "leading zero"),
        Rejection("0123.5", at: 1, "leading zero"),
        Rejection("-", at: 1, "digit"),
        Rejection("-a", at: 1, "digit"),
        Rejection("--1", at: 1, "digit"),
        Rejection("[-]", at: 2, "digit"),
        Rejection("1.", at: 2, "digit"),
        Rejection("1.e5", at: 2, "digit"),
        Rejection("[1.]", at: 3, "digit"),
        Rejection(".5", at: 0, "unexpected character '.'"),
        Rejection("+1", at: 0, "unexpected character '+'"),
        Rejection("1e", at: 2, "exponent"),
        Rejection("1e+", at: 3, "exponent"),
        Rejection("1.5E-", at: 5, "exponent"),
        Rejection("1ex", at: 2, "exponent"),
        Rejection("NaN", at: 0, "unexpected character 'N'"),
        Rejection("Infinity", at: 0, "unexpected character 'I'"),
        Rejection("-Infinity", at: 1, "digit"),
        Rejection("0x10", at: 1, "after the JSON value"),
        Rejection("1_000", at: 1, "after the JSON value"),
    ]

    static let structureRejections: [Rejection] = [
        Rejection("", at: 0, "end of input"),
        Rejection("   ", at: 3, "end of input"),
        Rejection("\n", at: 1, "end of input"),
        Rejection("tru", at: 0, "end of input"),
        Rejection("nul", at: 0, "end of input"),
        Rejection("fals", at: 0, "end of input"),
        Rejection("trux", at: 0, "literal"),
        Rejection("nulL", at: 0, "literal"),
        Rejection("falsy", at: 0, "literal"),
        Rejection("[tru]", at: 1, "literal"),
        Rejection("True", at: 0, "unexpected character 'T'"),
        Rejection("None", at: 0, "unexpected character 'N'"),
        Rejection("[1,]", at: 3, "unexpected character ']'"),
        Rejection("[1,2,]", at: 5, "unexpected character ']'"),
        Rejection("[,]", at: 1, "unexpected character ','"),
        Rejection("[,1]", at: 1, "unexpected character ','"),
        Rejection("[1,,2]", at: 3, "unexpected character ','"),
        Rejection(#"{"a":1,}"#, at: 7, "member name"),
        Rejection("{,}", at: 1, "member name"),
        Rejection("1 2", at: 2, "after the JSON value"),
        Rejection("{}x", at: 2, "after the JSON value"),
        Rejection("[1]]", at: 3, "after the JSON value"),
        Rejection("{}}", at: 2, "after the JSON value"),
        Rejection(#""a""b""#, at: 3, "after the JSON value"),
        Rejection("true false", at: 5, "after the JSON value"),
        Rejection("nullx", at: 4, "after the JSON value"),
        Rejection("1 // comment", at: 2, "after the JSON value"),
        Rejection("/* comment */ 1", at: 0, "unexpected character '/'"),
        Rejection("// comment\n1", at: 0, "unexpected character '/'"),
        Rejection("[1 /* c */]", at: 3, "',' or ']'"),
        Rejection(#"{"a":1 # c}"#, at: 7, "',' or '}'"),
        Rejection(#"{"a" 1}"#, at: 5, "':'"),
        Rejection(#"{"a"=1}"#, at: 4, "':'"),
        Rejection("{1:2}", at: 1, "member name"),
        Rejection("{a:1}", at: 1, "member name"),
        Rejection("[1 2]", at: 3, "',' or ']'"),
        Rejection(#"{"a":1 "b":2}"#, at: 7, "',' or '}'"),
        Rejection("[", at: 1, "end of input"),
        Rejection("[1", at: 2, "',' or ']'"),
        Rejection("{", at: 1, "member name"),
        Rejection(#"{"a":"#, at: 5, "end of input"),
        Rejection(#"{"a":1"#, at: 6, "',' or '}'"),
        Rejection("]", at: 0, "unexpected character ']'"),
        Rejection("}", at: 0, "unexpected character '}'"),
        Rejection("\u{0C}1", at: 0, "unexpected character"),
        Rejection("\u{0B}1", at: 0, "unexpected character"),
        Rejection("1\u{0C}", at: 1, "after the JSON value"),
        Rejection("no-break space", [0xC2, 0xA0, 0x31], at: 0, "UTF-8"),
        Rejection("NUL after value", [0x31, 0x00], at: 1, "after the JSON value"),
    ]

    @Test(arguments: utf8Rejections)
    func invalidUTF8(rejection: Rejection) { check(rejection) }

    @Test(arguments: stringRejections)
    func badStrings(rejection: Rejection) { check(rejection) }

    @Test(arguments: numberRejections)
    func badNumbers(rejection: Rejection) { check(rejection) }

    @Test(arguments: structureRejections)
    func badStructure(rejection: Rejection) { check(rejection) }

    private func check(_ rejection: Rejection) {
        guard let error = parseError(rejection.bytes) else {
            Issue.record("accepted \(describeBytes(rejection.bytes))")
            return
        }
        #expect(error.offset == rejection.offset, "\(error)")
        #expect(error.message.contains(rejection.fragment), "\(error)")
        #expect(error.description == "\(error.message) at byte \(error.offset)")
    }

    @Test func theScanRefusesTheSameInputsWithTheSameError() {
        for rejection in Self.structureRejections + Self.stringRejections {
            guard case .failure(let scanned) = scanResult(rejection.bytes) else {
                Issue.record("the scan accepted \(rejection.name)")
                continue
            }
            #expect(scanned == parseError(rejection.bytes), "\(rejection.name)")
        }
    }
}

// MARK: - Depth

@Suite("JSONParser: nesting depth")
struct JSONParserDepthTests {
    static func arrays(_ depth: Int) -> String {
        String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    }

    static func objects(_ depth: Int) -> String {
        String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
    }

    static func mixed(_ depth: Int) -> String {
        var open = "", close: [Character] = []
        for level in 0..<depth {
            if level.isMultiple(of: 2) {
                open += #"{"k":"#
                close.append("}")
            } else {
                open += "[1,"
                close.append("]")
            }
        }
        return open + "null" + String(close.reversed())
    }

    @Test func depthLimitIs64() {
        #expect(JSONParser.depthMax == 64)
    }

    @Test(arguments: [1, 2, 63, 64])
    func depthUpTo64IsAccepted(depth: Int) throws {
        _ = try JSONParser.parse(Self.arrays(depth))
        _ = try JSONParser.parse(Self.objects(depth))
        _ = try JSONParser.parse(Self.mixed(depth))
    }

    @Test(arguments: [65, 66, 200, 100_000])
    func depthOver64IsRejected(depth: Int) throws {
        let arrays = try #require(parseError(utf8(Self.arrays(depth))))
        #expect(arrays.offset == 64)
        #expect(arrays.message.contains("nesting"))
        let objects = try #require(parseError(utf8(Self.objects(depth))))
        #expect(objects.offset == 64 * 5)
        #expect(objects.message.contains("nesting"))
        let mixed = try #require(parseError(utf8(Self.mixed(depth))))
        #expect(mixed.message.contains("nesting"))
    }

    @Test func exactly64DeepCountsScalarsAsNoLevel() throws {
        let value = try JSONParser.parse(String(repeating: "[", count: 63) + "[1]" + String(repeating: "]", count: 63))
        var level = value
        var depth = 0
        while let inner = level.arrayValue?.first {
            level = inner
            depth += 1
        }
        #expect(depth == 64)
        #expect(level == number("1"))
    }

    /// Leaving a container must give its level back: many deep siblings are fine.
    @Test func siblingsAtDepth64DoNotAccumulate() throws {
        let sibling = Self.arrays(63)
        let text = "[" + Array(repeating: sibling, count: 10).joined(separator: ",") + "]"
        let value = try JSONParser.parse(text)
        #expect(value.arrayValue?.count == 10)
        let objectText = "{" + (0..<10).map { #""k\#($0)":\#(Self.objects(63))"# }.joined(separator: ",") + "}"
        #expect(try JSONParser.parse(objectText).objectValue?.members.count == 10)
    }

    @Test func a65DeepSiblingAfterShallowOnesIsRejected() throws {
        let text = "[" + Self.arrays(3) + "," + Self.arrays(64) + "]"
        let error = try #require(parseError(utf8(text)))
        #expect(error.message.contains("nesting"))
        #expect(error.offset == 8 + 63)
    }
}

// MARK: - Raw member capture

@Suite("JSONParser: raw member capture")
struct JSONParserRawMemberTests {
    @Test(arguments: [
        (#"{"op":"x","id":  1.50 }"#, "1.50"),
        (#"{"id":"a\u0041"}"#, #""a\u0041""#),
        (#"{"id":-0.0E+00}"#, "-0.0E+00"),
        (#"{"id":123456789012345678901234567890}"#, "123456789012345678901234567890"),
        (#"{"id":"😀\ud83d\ude00"}"#, #""😀\ud83d\ude00""#),
        (#"{"id":null}"#, "null"),
        (#"{"id":true , "x":1}"#, "true"),
        (#"{ "id" : [1, {"id": 2}] }"#, #"[1, {"id": 2}]"#),
        (#"{"id":{ "a" : "b" }}"#, #"{ "a" : "b" }"#),
        (#"{"id":1,"id":2}"#, "2"),
        (#"{"id":1,"x":{"id":3},"id":"last"}"#, #""last""#),
        (#"{"x":{"id":1},"id":2}"#, "2"),
        (#"{"id":2,"x":{"id":1}}"#, "2"),
        (#"{"id":2,"x":[{"id":1}]}"#, "2"),
        (#"{"\u0069d":7}"#, "7"),
        ("\n{\t\"id\"\r:\n\"x\"\t}\n", #""x""#),
    ])
    func capturesTheTopLevelIdVerbatim(text: String, raw: String) throws {
        let parsed = try parseCapturing(text)
        #expect(parsed.raw == raw)
        #expect(identical(parsed.value, try JSONParser.parse(text)))
    }

    @Test(arguments: [
        #"{"op":"x"}"#,
        #"{"x":{"id":1}}"#,
        #"{"x":[{"id":1}]}"#,
        #"[{"id":1}]"#,
        #"{}"#,
        #""id""#,
        "1",
        #"{"ID":1,"Id":2,"id ":3}"#,
        #"{"x":"\"id\":1"}"#,
    ])
    func capturesNothingWithoutATopLevelId(text: String) throws {
        #expect(try parseCapturing(text).raw == nil)
    }

    @Test func capturesOtherMemberNames() throws {
        #expect(try parseCapturing(#"{"id":1,"fence": 99 }"#, member: "fence").raw == "99")
    }

}
