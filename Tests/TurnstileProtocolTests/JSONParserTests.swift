import Foundation
import Testing
@testable import TurnstileProtocol

// MARK: - Helpers

/// The bytes of a string, for tests that build inputs byte by byte.
func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A number value with the given text.
func number(_ text: String) -> JSONValue { .number(JSONNumber(text: text)) }

/// An object value with members in the given order.
func object(_ members: (String, JSONValue)...) -> JSONValue {
    .object(JSONObject(members.map { (key: $0.0, value: $0.1) }))
}

/// The error the parser reports for `bytes`, or nil if it accepts them.
func parseError(_ bytes: [UInt8]) -> JSONError? {
    do {
        _ = try JSONParser.parse(bytes)
        return nil
    } catch {
        return error
    }
}

/// Scans `text` as the daemon does, and returns it built and the raw bytes of the top-level
/// member `name`.
func parseCapturing(_ text: String, member name: String = "id") throws(JSONError) -> (value: JSONValue, raw: String?) {
    let bytes = utf8(text)
    let result: Result<String?, JSONError> = bytes.withUnsafeBufferPointer { buffer in
        Result { () throws(JSONError) -> String? in
            var members: [JSONMember] = []
            guard try JSONParser.scanObject(buffer, members: &members) == .object else { return nil }
            let view = JSONObjectView(bytes: buffer, members: members)
            return view.member(named: name).map { String(decoding: view.raw($0), as: UTF8.self) }
        }
    }
    return (try JSONParser.parse(bytes), try result.get())
}

/// What `JSONParser.scanObject` says of the bytes: the top-level kind, or its error.
func scanResult(_ bytes: [UInt8]) -> Result<JSONKind, JSONError> {
    bytes.withUnsafeBufferPointer { buffer in
        var members: [JSONMember] = []
        return Result { () throws(JSONError) -> JSONKind in try JSONParser.scanObject(buffer, members: &members) }
    }
}

/// Structural equality that compares strings scalar by scalar (Swift's `==` on `String` uses
/// canonical equivalence, which would hide a parser that normalised text).
func identical(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
    switch (lhs, rhs) {
    case (.null, .null): return true
    case (.bool(let a), .bool(let b)): return a == b
    case (.number(let a), .number(let b)): return a.text == b.text
    case (.string(let a), .string(let b)): return Array(a.unicodeScalars) == Array(b.unicodeScalars)
    case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { identical($0, $1) }
    case (.object(let a), .object(let b)):
        return a.members.count == b.members.count && zip(a.members, b.members).allSatisfy {
            Array($0.key.unicodeScalars) == Array($1.key.unicodeScalars) && identical($0.value, $1.value)
        }
    default: return false
    }
}

/// Makes bytes readable in failure messages: printable ASCII as is, the rest as `\xNN`.
func describeBytes(_ bytes: [UInt8]) -> String {
    var text = ""
    for byte in bytes.prefix(400) {
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") {
            text.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            text += "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
    }
    return bytes.count > 400 ? text + "… (\(bytes.count) bytes)" : text
}

extension String {
    /// The string with leading zeros up to `width` characters.
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

// MARK: - Valid documents

@Suite("JSONParser: valid documents")
struct JSONParserValidDocumentTests {
    @Test(arguments: [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("0", number("0")),
        ("\"text\"", .string("text")),
        ("\"\"", .string("")),
        ("[]", .array([])),
        ("{}", object()),
    ])
    func everyTypeAtTopLevel(text: String, expected: JSONValue) throws {
        let value = try JSONParser.parse(text)
        #expect(identical(value, expected), "\(text) parsed as \(value)")
    }

    @Test func arrayOfEveryType() throws {
        let value = try JSONParser.parse(#"[1,"a",null,true,false,{},[],-2.5]"#)
        let expected = JSONValue.array([
            number("1"), .string("a"), .null, .bool(true), .bool(false), object(), .array([]), number("-2.5"),
        ])
        #expect(identical(value, expected))
        #expect(value.arrayValue?.count == 8)
        #expect(value.typeName == "an array")
    }

    @Test func nestedObjectsAndArrays() throws {
        let value = try JSONParser.parse(#"{"a":{"b":[1,[2,{"c":[]}]]},"d":[{"e":null}]}"#)
        let expected = object(
            ("a", object(("b", .array([number("1"), .array([number("2"), object(("c", .array([])))])])))),
            ("d", .array([object(("e", .null))]))
        )
        #expect(identical(value, expected))
        #expect(value.objectValue?["a"]?.objectValue?["b"]?.arrayValue?[1].arrayValue?[0] == number("2"))
    }

    @Test func objectsKeepMemberOrderAndTheLastDuplicateWins() throws {
        let value = try JSONParser.parse(#"{"b":1,"a":2,"b":3}"#)
        let members = try #require(value.objectValue).members
        #expect(members.map(\.key) == ["b", "a", "b"])
        #expect(value.objectValue?["b"] == number("3"))
        #expect(value.objectValue?["a"] == number("2"))
        #expect(value.objectValue?["missing"] == nil)
    }

    @Test func whitespaceIsAllowedEverywhereJSONAllowsIt() throws {
        let text = " \t\n\r{ \t\n\r\"a\" \t\n\r: \t\n\r[ \t\n\r1 \t\n\r, \t\n\rtrue \t\n\r] \t\n\r, \t\n\r\"b\"\r:\n{\t}\n,\"c\" : [ ] } \t\n\r"
        let value = try JSONParser.parse(text)
        #expect(identical(value, object(("a", .array([number("1"), .bool(true)])), ("b", object()), ("c", .array([])))))
    }

    @Test(arguments: [" 1", "1 ", "\t\"s\"\n", "\r\nnull\r\n", " [ ] ", "\n{\n}\n"])
    func whitespaceAroundTheTopLevelValue(text: String) throws {
        _ = try JSONParser.parse(text)
    }

    @Test func theThreeEntryPointsAgree() throws {
        let text = #"{"k":["v",1.0e5,{"n":null}]}"#
        let bytes = utf8(text)
        let fromString = try JSONParser.parse(text)
        let fromArray = try JSONParser.parse(bytes)
        let fromBuffer = try bytes.withUnsafeBufferPointer { buffer in try JSONParser.parse(buffer) }
        #expect(identical(fromString, fromArray))
        #expect(identical(fromString, fromBuffer))
        #expect(fromString.objectValue?["k"]?.arrayValue?[1].numberValue?.text == "1.0e5")
    }

    @Test func valueAccessorsMatchTheirCase() throws {
        let value = try JSONParser.parse(#"{"s":"x","b":true,"n":null,"a":[],"o":{},"i":7}"#)
        let root = try #require(value.objectValue)
        #expect(root["s"]?.stringValue == "x")
        #expect(root["b"]?.boolValue == true)
        #expect(root["n"]?.isNull == true)
        #expect(root["a"]?.arrayValue == [])
        #expect(root["o"]?.objectValue == JSONObject())
        #expect(root["i"]?.numberValue?.int64 == 7)
        #expect(root["s"]?.numberValue == nil)
        #expect(root["i"]?.isScalar == true)
        #expect(root["o"]?.isScalar == false)
    }
}

// MARK: - Numbers

@Suite("JSONParser: numbers")
struct JSONParserNumberTests {
    /// Every valid spelling is kept exactly as written.
    @Test(arguments: [
        "0", "-0", "1", "-1", "1.5e-3", "1E+2", "1e2", "1E-2", "-12.25E-02", "0.0", "0e0", "-0.0e+0",
        "123456789012345678901234567890", "-98765432109876543210987654321098765432109876543210",
        "0.000000000000000000000000000001", "1e400", "9007199254740993", "3.141592653589793238462643383279",
    ])
    func keepsTheTextExactly(text: String) throws {
        let value = try JSONParser.parse(text)
        #expect(value.numberValue?.text == text)
        #expect(value.numberValue?.description == text)
        let inArray = try JSONParser.parse("[ \(text) ]")
        #expect(inArray.arrayValue?.first?.numberValue?.text == text)
    }

    @Test(arguments: [
        ("0", 0.0), ("-0", -0.0), ("1.5e-3", 0.0015), ("1E+2", 100.0), ("-12.25E-02", -0.1225), ("2.5", 2.5),
    ])
    func doubleAccessor(text: String, expected: Double) throws {
        let value = try #require(try JSONParser.parse(text).numberValue?.double)
        #expect(value == expected)
        #expect(value.sign == expected.sign)
    }

    @Test(arguments: [
        ("0", Int64(0)), ("-0", Int64(0)), ("42", Int64(42)), ("-42", Int64(-42)),
        ("9223372036854775807", Int64.max), ("-9223372036854775808", Int64.min),
    ])
    func int64AccessorReadsIntegersExactly(text: String, expected: Int64) throws {
        #expect(try JSONParser.parse(text).numberValue?.int64 == expected)
    }

    @Test(arguments: ["9223372036854775808", "-9223372036854775809", "1.0", "1e2", "0.5", "123456789012345678901234567890"])
    func int64AccessorRefusesWhatIsNotAnInt64(text: String) throws {
        #expect(try JSONParser.parse(text).numberValue?.int64 == nil)
    }

    @Test(arguments: [
        ("0", UInt64(0)), ("9223372036854775808", UInt64(9_223_372_036_854_775_808)), ("18446744073709551615", UInt64.max),
    ])
    func uint64AccessorReadsIntegersExactly(text: String, expected: UInt64) throws {
        #expect(try JSONParser.parse(text).numberValue?.uint64 == expected)
    }

    @Test(arguments: ["18446744073709551616", "-1", "1.5", "1E3"])
    func uint64AccessorRefusesWhatIsNotAUInt64(text: String) throws {
        #expect(try JSONParser.parse(text).numberValue?.uint64 == nil)
    }
}

// MARK: - Strings

@Suite("JSONParser: strings")
struct JSONParserStringTests {
    @Test func everyShortEscape() throws {
        let value = try JSONParser.parse(#""\"\\\/\b\f\n\r\t""#)
        #expect(value.stringValue.map { Array($0.unicodeScalars) } == ["\"", "\\", "/", "\u{8}", "\u{C}", "\n", "\r", "\t"])
    }

    @Test(arguments: [
        (#""\u0041""#, "A"),
        (#""\u00e9""#, "\u{E9}"),
        (#""\u00E9""#, "\u{E9}"),
        (#""\u20AC""#, "\u{20AC}"),
        (#""\u0000""#, "\u{0}"),
        (#""\u001F""#, "\u{1F}"),
        (#""\uFFFF""#, "\u{FFFF}"),
        (#""\ud83d\ude00""#, "\u{1F600}"),
        (#""\uD83D\uDE00""#, "\u{1F600}"),
        (#""\ud800\udc00""#, "\u{10000}"),
        (#""\udbff\udfff""#, "\u{10FFFF}"),
        (#""e\u0301""#, "e\u{301}"),
        (#""a\u0062c\n\u00e9\ud83d\ude00z""#, "abc\n\u{E9}\u{1F600}z"),
    ])
    func unicodeEscapes(text: String, expected: String) throws {
        let value = try #require(try JSONParser.parse(text).stringValue)
        #expect(Array(value.unicodeScalars) == Array(expected.unicodeScalars))
    }

    /// Raw UTF-8 of every length, at the edges of each length's range.
    @Test(arguments: [
        [0xC2, 0x80], [0xC3, 0xA9], [0xDF, 0xBF],
        [0xE0, 0xA0, 0x80], [0xE2, 0x82, 0xAC], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF],
        [0xF0, 0x90, 0x80, 0x80], [0xF0, 0x9F, 0x98, 0x80], [0xF3, 0xBF, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF],
    ] as [[UInt8]])
    func rawUTF8Sequences(sequence: [UInt8]) throws {
        let bytes = [0x22] + sequence + [0x61] + sequence + [0x22]
        let value = try #require(try JSONParser.parse(bytes).stringValue)
        #expect(Array(value.utf8) == sequence + [0x61] + sequence)
        #expect(value.unicodeScalars.count == 3)
    }

    @Test func rawUTF8MixedWithEscapes() throws {
        let value = try #require(try JSONParser.parse("\"é\\n€\\u00e9😀\\\"\"").stringValue)
        #expect(Array(value.unicodeScalars) == Array("é\n€\u{E9}😀\"".unicodeScalars))
    }

    @Test func deleteAndNonASCIIWhitespaceAreAllowedRaw() throws {
        let value = try #require(try JSONParser.parse([0x22, 0x7F, 0xE2, 0x80, 0xA8, 0x22]).stringValue)
        #expect(Array(value.unicodeScalars) == ["\u{7F}", "\u{2028}"])
    }

    @Test func keysAreDecodedLikeValues() throws {
        let value = try JSONParser.parse(#"{"\u0069d":1,"é\n":2}"#)
        #expect(value.objectValue?.members.map(\.key) == ["id", "é\n"])
    }

    @Test func longStringsSurviveTheFastPath() throws {
        let body = String(repeating: "abcdefgh", count: 2_000)
        #expect(try JSONParser.parse("\"\(body)\"").stringValue == body)
        #expect(try JSONParser.parse("\"\(body)\\n\(body)\"").stringValue == body + "\n" + body)
    }
}

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

// MARK: - Random inputs

/// SplitMix64 (Steele, Lea & Flood), written here so the fuzz tests depend on nothing in the
/// package they test.
struct TestRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// A number in `0..<count`.
    mutating func below(_ count: Int) -> Int { Int(next() % UInt64(count)) }

    /// True with probability `percent`/100.
    mutating func percent(_ percent: Int) -> Bool { below(100) < percent }

    /// One of `options`.
    mutating func pick<T>(_ options: [T]) -> T { options[below(options.count)] }
}

/// Random JSON values and random renderings of them: random white space, random choice
/// between raw UTF-8 and escapes, random hex case, random number spellings.
struct RandomJSON {
    var random: TestRandom

    /// Keys drawn from a small pool, so objects often repeat a key.
    static let keyPool = ["id", "op", "a", "", "é", "e\u{301}", "k\"q", "\u{1F600}", "\u{0}", "lease"]

    /// Building blocks of random strings, grouped by how they must or may be written.
    static let scalarBuckets: [ClosedRange<UInt32>] = [
        0x20...0x7E, 0x20...0x7E, 0x20...0x7E, 0x00...0x1F, 0x7F...0x7F, 0x80...0x7FF,
        0x800...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF, 0x300...0x36F, 0x2028...0x2029,
    ]

    init(seed: UInt64) {
        random = TestRandom(seed: seed)
    }

    /// A random value; containers only while `depth` allows.
    mutating func value(depth: Int = 4) -> JSONValue {
        let kind = random.below(depth > 0 ? 9 : 6)
        switch kind {
        case 0: return .null
        case 1: return .bool(random.percent(50))
        case 2, 3: return .number(JSONNumber(text: numberText()))
        case 4, 5: return .string(string())
        case 6, 7:
            return .array((0..<random.below(5)).map { _ in value(depth: depth - 1) })
        default:
            let members = (0..<random.below(5)).map { _ in
                (key: random.percent(50) ? random.pick(Self.keyPool) : string(), value: value(depth: depth - 1))
            }
            return .object(JSONObject(members))
        }
    }

    /// A value nested `depth` containers deep, around the parser's limit.
    mutating func deepValue(depth: Int) -> JSONValue {
        var value = value(depth: 0)
        for _ in 0..<depth {
            value = random.percent(50) ? .array([value]) : .object(JSONObject([(key: "d", value: value)]))
        }
        return value
    }

    /// A number as JSON writes it: sign, integer part, optional fraction and exponent. Exponents
    /// mostly stay within a double's range; sometimes they leave it.
    mutating func numberText() -> String {
        var text = random.percent(30) ? "-" : ""
        if random.percent(25) {
            text += "0"
        } else {
            text += String(random.below(9) + 1)
            let length = random.percent(10) ? random.below(40) : random.below(6)
            for _ in 0..<length { text += String(random.below(10)) }
        }
        if random.percent(30) {
            text += "."
            for _ in 0..<(1 + random.below(random.percent(10) ? 30 : 6)) { text += String(random.below(10)) }
        }
        if random.percent(25) {
            text += random.pick(["e", "E"]) + random.pick(["", "+", "-"])
            let digits = random.percent(5) ? 3 : 1 + random.below(2)
            for _ in 0..<digits { text += String(random.below(10)) }
        }
        return text
    }

    /// A random string mixing ASCII, controls, every UTF-8 length and combining marks.
    mutating func string() -> String {
        var text = String.UnicodeScalarView()
        for _ in 0..<random.below(random.percent(10) ? 40 : 8) {
            let bucket = random.pick(Self.scalarBuckets)
            let scalar = bucket.lowerBound + UInt32(random.below(Int(bucket.upperBound - bucket.lowerBound) + 1))
            text.append(Unicode.Scalar(scalar)!)
        }
        return String(text)
    }

    /// Renders `value` as valid JSON, choosing spellings at random.
    mutating func render(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        whitespace(into: &out)
        render(value, into: &out)
        whitespace(into: &out)
        return out
    }

    private mutating func render(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out += utf8("null")
        case .bool(let flag): out += utf8(flag ? "true" : "false")
        case .number(let number): out += utf8(number.text)
        case .string(let text): render(string: text, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            whitespace(into: &out)
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")); whitespace(into: &out) }
                render(element, into: &out)
                whitespace(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            whitespace(into: &out)
            for (index, member) in object.members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")); whitespace(into: &out) }
                render(string: member.key, into: &out)
                whitespace(into: &out)
                out.append(UInt8(ascii: ":"))
                whitespace(into: &out)
                render(member.value, into: &out)
                whitespace(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private mutating func whitespace(into out: inout [UInt8]) {
        guard random.percent(30) else { return }
        for _ in 0..<(1 + random.below(3)) { out.append(random.pick([0x20, 0x09, 0x0A, 0x0D])) }
    }

    private mutating func render(string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for scalar in string.unicodeScalars {
            let short: Character? = switch scalar {
            case "\"": "\""
            case "\\": "\\"
            case "/": random.percent(50) ? "/" : nil
            case "\u{8}": "b"
            case "\u{C}": "f"
            case "\n": "n"
            case "\r": "r"
            case "\t": "t"
            default: nil
            }
            let mustEscape = scalar.value < 0x20 || scalar == "\"" || scalar == "\\"
            if let short, random.percent(70) {
                out += [UInt8(ascii: "\\"), short.asciiValue!]
            } else if mustEscape || random.percent(25) {
                unicodeEscape(scalar, into: &out)
            } else {
                out += Array(String(scalar).utf8)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private mutating func unicodeEscape(_ scalar: Unicode.Scalar, into out: inout [UInt8]) {
        let uppercase = random.percent(50)
        for unit in String(scalar).utf16 {
            out += utf8("\\u" + String(unit, radix: 16, uppercase: uppercase).leftPadded(to: 4))
        }
    }

    // MARK: Mutations

    /// Bytes that matter to a JSON parser, to splice into documents.
    static let interestingBytes: [UInt8] = utf8("\"\\,:[]{}01-+.eE \t\n\rtnu/'x") + [
        0x00, 0x01, 0x0C, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF,
    ]

    /// Byte sequences at the edges of UTF-8 and of escapes.
    static let interestingSequences: [[UInt8]] = [
        [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xF0, 0x80, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0x80], [0xE2, 0x82],
        [0xF0, 0x9F, 0x98], [0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xEF, 0xBB, 0xBF],
        utf8("\\u"), utf8("\\ud800"), utf8("\\udc00"), utf8("\\ud83d\\ude00"), utf8("\\ud83d"), utf8("\\x"),
        utf8("\\"), utf8("\\u00"), utf8("1e"), utf8("-"), utf8(".5"), utf8("01"), utf8(",]"), utf8(",}"),
        utf8("tru"), utf8("null"), utf8("/*c*/"), utf8("NaN"), utf8("[[[["), utf8("]]]]"),
    ]

    /// `document` with one to three random edits.
    mutating func mutate(_ document: [UInt8]) -> [UInt8] {
        var bytes = document
        for _ in 0..<(1 + random.below(3)) {
            let index = random.below(bytes.count + 1)
            switch random.below(10) {
            case 0 where index < bytes.count: bytes[index] ^= UInt8(1) << UInt8(random.below(8))
            case 1 where index < bytes.count: bytes[index] = random.pick(Self.interestingBytes)
            case 2: bytes.insert(random.pick(Self.interestingBytes), at: index)
            case 3 where index < bytes.count: bytes.remove(at: index)
            case 4:
                let end = min(bytes.count, index + 1 + random.below(8))
                bytes.removeSubrange(index..<end)
            case 5: bytes.removeSubrange(index...)
            case 6, 7: bytes.insert(contentsOf: random.pick(Self.interestingSequences), at: index)
            case 8:
                let end = min(bytes.count, index + random.below(12))
                let copy = Array(bytes[index..<end])
                bytes.insert(contentsOf: copy, at: random.below(bytes.count + 1))
            default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
            }
        }
        return bytes
    }

    /// Tokens strung together at random: mostly not JSON, but close to it.
    mutating func tokenSoup() -> [UInt8] {
        let tokens = [
            "{", "}", "[", "]", ",", ":", "\"a\"", "\"id\"", "1", "-", "0", "01", "1.", ".5", "1e5", "-0.0E-1",
            "true", "tru", "null", "false", " ", "\n", "\"\\u00e9\"", "\"\\ud800\"", "\"", "\\", "'a'", "NaN",
        ]
        return (0..<(1 + random.below(12))).flatMap { _ in utf8(random.pick(tokens)) }
    }
}

// MARK: - Differential fuzzing against Foundation

/// Differential fuzzing: the parser must accept exactly what Foundation's `JSONSerialization`
/// accepts, and both must read the same value, except for a few deliberate, documented
/// divergences (see `KnownDivergence`). A failure prints the case's seed; `TURNSTILE_FUZZ_SEED`
/// replays a run and `TURNSTILE_FUZZ_ITERATIONS` scales it up.
@Suite("JSONParser: differential fuzzing against Foundation")
struct JSONParserFuzzTests {
    static let iterations = fuzzEnvironment("TURNSTILE_FUZZ_ITERATIONS").map(Int.init) ?? 4_000
    static let baseSeed = fuzzEnvironment("TURNSTILE_FUZZ_SEED") ?? 0x7475_726E_7374_696C

    /// Where Turnstile's parser refuses what Foundation accepts, on purpose.
    enum KnownDivergence: CaseIterable {
        /// Foundation sniffs the encoding (UTF-16/32 when a NUL is among the first two bytes) and
        /// skips byte order marks. The wire protocol is UTF-8 only, and NUL or a BOM there is an error.
        case encodingSniffing
        /// Foundation accepts a trailing comma (`[1,]`, `{"a":1,}`); RFC 8259 does not.
        case trailingComma
        /// Foundation nests to 512 levels; the parser stops at 64 (a bound on recursion).
        case deeperThanLimit
        /// Foundation refuses numbers a `Double` cannot hold (`1e400`); the parser keeps numbers
        /// as text, so it accepts them (their `double` is infinite, `int64` nil).
        case numberBeyondDouble
        // Not exclusions but tolerances, in `agrees`: Foundation reads numbers with 17 or more
        // significant digits as `NSDecimalNumber`, whose `doubleValue` is not correctly rounded
        // (compared within 1e-12), and drops a raw U+FEFF that starts a run of unescaped text in
        // a string (see `agrees`).
    }

    /// Statistics for one run, to check that the generators exercise both outcomes.
    struct Tally {
        var bothAccepted = 0
        var bothRejected = 0
        var excluded: [KnownDivergence: Int] = [:]
        var failures = 0
    }

    @Test func generatedDocumentsParseToTheirValueAndAgreeWithFoundation() {
        var tally = Tally()
        for iteration in 0..<Self.iterations * 2 {
            let seed = Self.baseSeed &+ UInt64(iteration)
            var generator = RandomJSON(seed: seed)
            let value = generator.random.percent(3)
                ? generator.deepValue(depth: 60 + generator.random.below(8))
                : generator.value(depth: 1 + generator.random.below(5))
            let bytes = generator.render(value)
            if value.maximumDepth <= JSONParser.depthMax {
                let parsed = try? JSONParser.parse(bytes)
                #expect(parsed.map { identical($0, value) } == true, "\(Self.origin(iteration, seed)): \(describeBytes(bytes))")
            }
            compare(bytes, origin: Self.origin(iteration, seed), tally: &tally)
            if tally.failures > 10 { break }
        }
        #expect(tally.bothAccepted > Self.iterations, "\(tally)")
        #expect(tally.excluded[.deeperThanLimit, default: 0] > 0, "\(tally)")
    }

    @Test func mutatedDocumentsAreAcceptedExactlyWhenFoundationAcceptsThem() {
        var tally = Tally()
        for iteration in 0..<Self.iterations * 4 {
            let seed = (Self.baseSeed ^ 0xFFFF_0000) &+ UInt64(iteration)
            var generator = RandomJSON(seed: seed)
            let document = generator.render(generator.value(depth: 1 + generator.random.below(4)))
            let bytes = generator.random.percent(15) ? generator.tokenSoup() : generator.mutate(document)
            compare(bytes, origin: Self.origin(iteration, seed), tally: &tally)
            if tally.failures > 10 { break }
        }
        #expect(tally.bothAccepted > Self.iterations / 8, "\(tally)")
        #expect(tally.bothRejected > Self.iterations, "\(tally)")
        #expect(tally.excluded[.trailingComma, default: 0] > 0, "\(tally)")
    }

    @Test func randomBytesAreAcceptedExactlyWhenFoundationAcceptsThem() {
        var tally = Tally()
        for iteration in 0..<Self.iterations {
            let seed = (Self.baseSeed ^ 0xABCD_0000_0000) &+ UInt64(iteration)
            var random = TestRandom(seed: seed)
            let bytes = (0..<random.below(12)).map { _ in
                random.percent(60) ? random.pick(RandomJSON.interestingBytes) : UInt8(truncatingIfNeeded: random.next())
            }
            compare(bytes, origin: Self.origin(iteration, seed), tally: &tally)
            if tally.failures > 10 { break }
        }
        #expect(tally.bothRejected > Self.iterations / 2, "\(tally)")
    }

    /// The known divergences really are divergences (so excluding them hides nothing else).
    @Test(arguments: [
        ([0xEF, 0xBB, 0xBF, 0x31], KnownDivergence.encodingSniffing),
        ([0x31, 0x00], .encodingSniffing),
        (utf8("[1,]"), .trailingComma),
        (utf8(#"{"a":[1 , ] , }"#), .trailingComma),
        (utf8(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)), .deeperThanLimit),
    ] as [([UInt8], KnownDivergence)])
    func knownDivergencesAreReal(bytes: [UInt8], divergence: KnownDivergence) {
        #expect(Self.knownDivergence(bytes) == divergence)
        #expect(parseError(bytes) != nil)
        #expect(Self.foundationParse(bytes) != nil)
    }

    @Test func numbersBeyondDoubleAreTheOnlyDivergenceTheParserAccepts() throws {
        let value = try JSONParser.parse("[1e400]")
        #expect(value.containsNumberBeyondDouble)
        #expect(Self.foundationParse(utf8("[1e400]")) == nil)
        #expect(!(try JSONParser.parse("[1e300, 1e-400]")).containsNumberBeyondDouble)
    }

    /// The tolerances in `agrees` cover real Foundation behaviour, and the parser is the exact one.
    @Test func foundationsOwnQuirksAreTolerated() throws {
        let bom: [UInt8] = [0x22, 0xEF, 0xBB, 0xBF, 0x41, 0x5C, 0x6E, 0xEF, 0xBB, 0xBF, 0x42, 0x22]
        let ours = try JSONParser.parse(bom)
        #expect(ours.stringValue.map { Array($0.unicodeScalars) } == ["\u{FEFF}", "A", "\n", "\u{FEFF}", "B"])
        let theirs = try #require(Self.foundationParse(bom) as? String)
        #expect(Array(theirs.unicodeScalars) == ["A", "\n", "B"], "Foundation fixed? Then drop the U+FEFF tolerance.")
        #expect(Self.agrees(ours, theirs))
        #expect(!Self.agrees(.string("\u{FEFF}A"), "B"))

        let long = "0.30000000000000004"
        #expect(try JSONParser.parse(long).numberValue?.double == 0.1 + 0.2)
        let decimal = try #require(Self.foundationParse(utf8(long)) as? NSNumber)
        #expect(decimal is NSDecimalNumber)
        #expect(Self.agrees(number(long), decimal))
        #expect(!Self.agrees(number("0.3000000001"), decimal))
    }

    @Test func theClassifierIgnoresLookalikesInsideStrings() {
        #expect(Self.knownDivergence(utf8(#"[",]"]"#)) == nil)
        #expect(Self.knownDivergence(utf8(#"["\",]"]"#)) == nil)
        #expect(Self.knownDivergence(utf8(#"{"a":"\\",}"#)) == .trailingComma)
    }

    // MARK: Oracle plumbing

    /// Where a case came from, for a failure message: enough to replay the run, or the case.
    static func origin(_ iteration: Int, _ seed: UInt64) -> String {
        "TURNSTILE_FUZZ_SEED=\(baseSeed), iteration \(iteration) (case seed \(seed))"
    }

    /// Parses with both and checks the property, counting what happened.
    private func compare(_ bytes: [UInt8], origin: @autoclosure () -> String, tally: inout Tally) {
        let ours = Result { () throws(JSONError) in try JSONParser.parse(bytes) }
        let scanned = scanResult(bytes)
        if scanned.map(\.typeName) != ours.map(\.typeName) {
            tally.failures += 1
            Issue.record("\(origin()): the scan says \(scanned), the parser \(ours) for \(describeBytes(bytes))")
        }
        if let divergence = Self.knownDivergence(bytes) {
            tally.excluded[divergence, default: 0] += 1
            if case .success = ours {
                tally.failures += 1
                Issue.record("\(origin()): accepted a \(divergence) input: \(describeBytes(bytes))")
            }
            return
        }
        if case .success(let value) = ours, value.containsNumberBeyondDouble {
            tally.excluded[.numberBeyondDouble, default: 0] += 1
            return
        }
        let theirs = Self.foundationParse(bytes)
        switch (ours, theirs) {
        case (.success(let value), .some(let object)):
            tally.bothAccepted += 1
            if !Self.agrees(value, object) {
                tally.failures += 1
                Issue.record("\(origin()): values differ for \(describeBytes(bytes)): ours \(value), Foundation \(object)")
            }
        case (.failure, nil):
            tally.bothRejected += 1
        case (.success(let value), nil):
            tally.failures += 1
            Issue.record("\(origin()): accepted what Foundation refuses: \(describeBytes(bytes)) → \(value)")
        case (.failure(let error), .some):
            tally.failures += 1
            Issue.record("\(origin()): refused what Foundation accepts: \(describeBytes(bytes)) (\(error))")
        }
    }

    /// Foundation's reading of `bytes`, or nil if it refuses them.
    static func foundationParse(_ bytes: [UInt8]) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
    }

    /// Which deliberate divergence `bytes` fall under, if any. The scan follows strings (so a
    /// `,]` inside one does not count); on input that is not JSON it may guess wrong, but then
    /// the parser must refuse the input anyway, which `compare` checks.
    static func knownDivergence(_ bytes: [UInt8]) -> KnownDivergence? {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) || bytes.starts(with: [0xFE, 0xFF]) || bytes.starts(with: [0xFF, 0xFE])
            || bytes.prefix(2).contains(0) {
            return .encodingSniffing
        }
        var inString = false, escaped = false
        var depth = 0, deepest = 0
        var previous: UInt8 = 0
        var trailingComma = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if previous == UInt8(ascii: ",") { trailingComma = true }
            default: break
            }
            if ![0x20, 0x09, 0x0A, 0x0D].contains(byte) { previous = byte }
        }
        if deepest > JSONParser.depthMax { return .deeperThanLimit }
        return trailingComma ? .trailingComma : nil
    }

    /// Whether our value and Foundation's agree: numbers as doubles, strings scalar for scalar,
    /// objects as sets of members with the last duplicate winning (as both do).
    static func agrees(_ ours: JSONValue, _ theirs: Any) -> Bool {
        switch ours {
        case .null:
            return theirs is NSNull
        case .bool(let flag):
            guard let number = theirs as? NSNumber, isBoolean(number) else { return false }
            return number.boolValue == flag
        case .number(let ourNumber):
            guard let number = theirs as? NSNumber, !isBoolean(number), let double = ourNumber.double else { return false }
            return closeEnough(double, number.doubleValue, exact: !(number is NSDecimalNumber))
        case .string(let text):
            guard let string = theirs as? String else { return false }
            let ourScalars = Array(text.unicodeScalars), theirScalars = Array(string.unicodeScalars)
            // Foundation drops a U+FEFF written raw at the start of a string or right after an
            // escape (it decodes each run of raw bytes as if it were a file with a byte order
            // mark). U+FEFF is an ordinary character in JSON text, so the parser keeps it; with
            // one present, compare the strings without their U+FEFFs.
            if ourScalars.contains("\u{FEFF}") {
                return ourScalars.filter { $0 != "\u{FEFF}" } == theirScalars.filter { $0 != "\u{FEFF}" }
            }
            return ourScalars == theirScalars
        case .array(let elements):
            guard let array = theirs as? [Any], array.count == elements.count else { return false }
            return zip(elements, array).allSatisfy { agrees($0, $1) }
        case .object(let object):
            guard let dictionary = theirs as? [String: Any] else { return false }
            var lastWins: [String: JSONValue] = [:]
            for member in object.members { lastWins[member.key] = member.value }
            return lastWins.count == dictionary.count
                && lastWins.allSatisfy { key, value in dictionary[key].map { agrees(value, $0) } ?? false }
        }
    }

    /// Foundation marks booleans with the `c` (char) type; JSON numbers never come out as chars.
    static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }

    /// Equal doubles; Foundation's `NSDecimalNumber.doubleValue` is not correctly rounded, so
    /// numbers it read as decimals may differ in the last bits.
    static func closeEnough(_ ours: Double, _ theirs: Double, exact: Bool) -> Bool {
        if ours == theirs { return true }
        return !exact && abs(ours - theirs) <= abs(ours) * 1e-12
    }
}

/// A whole number from the environment.
func fuzzEnvironment(_ name: String) -> UInt64? {
    ProcessInfo.processInfo.environment[name].flatMap { UInt64($0) }
}

extension JSONValue {
    /// Levels of arrays and objects.
    var maximumDepth: Int {
        switch self {
        case .array(let elements): 1 + (elements.map(\.maximumDepth).max() ?? 0)
        case .object(let object): 1 + (object.members.map(\.value.maximumDepth).max() ?? 0)
        default: 0
        }
    }

    /// Whether some number in the value is too large for a `Double`.
    var containsNumberBeyondDouble: Bool {
        switch self {
        case .number(let number): !(number.double?.isFinite ?? false)
        case .array(let elements): elements.contains { $0.containsNumberBeyondDouble }
        case .object(let object): object.members.contains { $0.value.containsNumberBeyondDouble }
        default: false
        }
    }
}
