import Foundation
import Testing
@testable import TurnstileProtocol

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
