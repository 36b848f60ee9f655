import Foundation
import Testing
@testable import TurnstileProtocol

/// What a writer produces when `body` drives it, as text.
private func written(_ body: (inout JSONWriter) -> Void) -> String {
    var writer = JSONWriter()
    body(&writer)
    return String(decoding: writer.bytes, as: UTF8.self)
}

/// The JSON for one value.
private func written(_ value: JSONValue) -> [UInt8] {
    var writer = JSONWriter()
    writer.value(value)
    return writer.bytes
}

@Suite("JSONWriter: values")
struct JSONWriterValueTests {
    @Test func scalars() {
        #expect(written { $0.null() } == "null")
        #expect(written { $0.bool(true) } == "true")
        #expect(written { $0.bool(false) } == "false")
        #expect(written { $0.int(0) } == "0")
        #expect(written { $0.int(42) } == "42")
        #expect(written { $0.int(-7) } == "-7")
        #expect(written { $0.string("hi") } == #""hi""#)
        #expect(written { $0.string("") } == #""""#)
        #expect(written { $0.string(nil as String?) } == "null")
        #expect(written { $0.string("x" as String?) } == #""x""#)
        #expect(written { $0.double(1.5) } == "1.5")
    }

    @Test func emptyContainers() {
        #expect(written { $0.beginObject(); $0.endObject() } == "{}")
        #expect(written { $0.beginArray(); $0.endArray() } == "[]")
    }

    @Test(arguments: [
        (Int64.max, "9223372036854775807"), (Int64.min, "-9223372036854775808"), (Int64(-1), "-1"),
        (Int64(10), "10"), (Int64(1_000_000_007), "1000000007"),
    ])
    func int64Extremes(value: Int64, text: String) throws {
        #expect(written { $0.int(value) } == text)
        #expect(try JSONParser.parse(text).numberValue?.int64 == value)
    }

    @Test func otherIntegerTypes() {
        #expect(written { $0.int(UInt64.max) } == "18446744073709551615")
        #expect(written { $0.int(Int8.min) } == "-128")
        #expect(written { $0.int(UInt8(255)) } == "255")
        #expect(written { $0.int(Int32.min) } == "-2147483648")
        #expect(written { $0.int(Int(-100)) } == "-100")
    }

    @Test func randomIntegersMatchTheirDescription() {
        var random = TestRandom(seed: 99)
        for _ in 0..<2_000 {
            let value = Int64(bitPattern: random.next()) >> Int64(random.below(64))
            #expect(written { $0.int(value) } == String(value))
        }
    }
}

@Suite("JSONWriter: strings")
struct JSONWriterStringTests {
    @Test func escapesQuoteBackslashAndControls() {
        let text = "a\"b\\c\nd\te\u{1}f\u{1F}g\r\u{8}\u{C}\u{0}"
        #expect(written { $0.string(text) } == #""a\"b\\c\nd\te\u0001f\u001fg\r\b\f\u0000""#)
    }

    /// Every control character comes out escaped, and reads back as itself.
    @Test(arguments: 0x00...0x1F)
    func everyControlCharacter(code: Int) throws {
        let scalar = Unicode.Scalar(UInt8(code))
        let output = written { $0.string(String(scalar)) }
        let expected: String = switch code {
        case 0x08: #"\b"#
        case 0x09: #"\t"#
        case 0x0A: #"\n"#
        case 0x0C: #"\f"#
        case 0x0D: #"\r"#
        default: #"\u00"# + String(code, radix: 16).leftPadded(to: 2)
        }
        #expect(output == "\"" + expected + "\"")
        #expect(try JSONParser.parse(output).stringValue.map { Array($0.unicodeScalars) } == [scalar])
    }

    @Test func nonASCIIPassesThroughUnescaped() {
        let text = "é€😀\u{2028}\u{2029}\u{7F}\u{FFFF}\u{10FFFF}e\u{301}"
        var writer = JSONWriter()
        writer.string(text)
        #expect(writer.bytes == [0x22] + Array(text.utf8) + [0x22])
    }

    @Test func slashIsNotEscaped() {
        #expect(written { $0.string("a/b</script>") } == #""a/b</script>""#)
    }

    @Test func escapesAtTheEdgesOfTheString() {
        #expect(written { $0.string("\"") } == #""\"""#)
        #expect(written { $0.string("\\x\\") } == #""\\x\\""#)
        #expect(written { $0.string("\n\n") } == #""\n\n""#)
    }

    @Test func randomStringsReadBackIdentically() throws {
        var generator = RandomJSON(seed: 7)
        for _ in 0..<2_000 {
            let text = generator.string()
            var writer = JSONWriter()
            writer.string(text)
            #expect(!writer.bytes.contains { $0 < 0x20 }, "\(text.debugDescription)")
            #expect(!String(decoding: writer.bytes, as: UTF8.self).contains(#"\/"#))
            let back = try JSONParser.parse(writer.bytes).stringValue
            #expect(back.map { Array($0.unicodeScalars) } == Array(text.unicodeScalars), "\(text.debugDescription)")
        }
    }
}

@Suite("JSONWriter: doubles")
struct JSONWriterDoubleTests {
    @Test(arguments: [
        (3.0, "3"), (-3.0, "-3"), (0.0, "0"), (-0.0, "0"), (1.5, "1.5"), (0.1, "0.1"), (-2.25, "-2.25"),
        (999_999_999_999_999.0, "999999999999999"), (-999_999_999_999_999.0, "-999999999999999"),
        (1e-7, "1e-07"), (1e300, "1e+300"),
        (.nan, "null"), (.infinity, "null"), (-.infinity, "null"), (.signalingNaN, "null"),
    ])
    func exactSpellings(value: Double, text: String) {
        #expect(written { $0.double(value) } == text)
    }

    /// Values whose shortest spelling needs an exponent: valid JSON that reads back exactly.
    @Test(arguments: [
        1e-7, 1e300, -1e300, 1e15, 1e16, 123_456_789_012_345_680_000.0, .leastNonzeroMagnitude, .leastNormalMagnitude,
        .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 0.1 + 0.2, 1.0 / 3.0,
    ])
    func roundTripsExactly(value: Double) throws {
        let text = written { $0.double(value) }
        let parsed = try #require(try JSONParser.parse(text).numberValue)
        #expect(parsed.double == value, "\(text)")
        let foundation = try #require(JSONParserFuzzTests.foundationParse(utf8(text)) as? NSNumber, "\(text)")
        #expect(JSONParserFuzzTests.agrees(.number(parsed), foundation), "\(text): Foundation read \(foundation)")
    }

    @Test func integralDoublesBelow1e15AreIntegers() throws {
        for value in [1.0, 10.0, 123_456.0, 2e14, 999_999_999_999_999.0] {
            let text = written { $0.double(value) }
            #expect(try JSONParser.parse(text).numberValue?.int64 == Int64(value), "\(text)")
            #expect(written { $0.double(-value) } == "-" + text)
        }
    }

    /// From 1e15 on, integral doubles keep the double's own spelling (a fraction or an exponent).
    @Test(arguments: [1e15, -1e15, 9e15, 1e16, -1e20, 123_456_789_012_345_680_000.0])
    func integralDoublesFrom1e15KeepTheirDoubleSpelling(value: Double) throws {
        let text = written { $0.double(value) }
        #expect(text.contains(".") || text.contains("e"), "\(text)")
        #expect(try JSONParser.parse(text).numberValue?.double == value, "\(text)")
    }

    @Test func randomDoublesRoundTripThroughBothParsers() throws {
        var random = TestRandom(seed: 2024)
        var checked = 0
        for _ in 0..<3_000 {
            let value = random.percent(50)
                ? Double(bitPattern: random.next())
                : Double(Int64(bitPattern: random.next()) >> Int64(random.below(64))) / pow(10, Double(random.below(8)))
            let text = written { $0.double(value) }
            guard value.isFinite else {
                #expect(text == "null")
                continue
            }
            let ours = try JSONParser.parse(text).numberValue?.double
            #expect(ours == value, "\(text) for \(value)")
            let theirs = JSONParserFuzzTests.foundationParse(utf8(text))
            #expect(theirs.map { JSONParserFuzzTests.agrees(number(text), $0) } == true, "\(text) for \(value)")
            checked += 1
        }
        #expect(checked > 2_000)
    }
}

@Suite("JSONWriter: structure")
struct JSONWriterStructureTests {
    @Test func nestedContainersGetCommasInTheRightPlaces() {
        let text = written { writer in
            writer.beginObject()
            writer.key("a")
            writer.beginArray()
            writer.int(1)
            writer.int(2)
            writer.beginObject()
            writer.key("b")
            writer.null()
            writer.endObject()
            writer.beginArray()
            writer.endArray()
            writer.beginArray()
            writer.string("x")
            writer.endArray()
            writer.endArray()
            writer.key("c")
            writer.beginObject()
            writer.endObject()
            writer.key("d")
            writer.bool(false)
            writer.endObject()
        }
        #expect(text == #"{"a":[1,2,{"b":null},[],["x"]],"c":{},"d":false}"#)
    }

    @Test func staticKeys() {
        let text = written { writer in
            writer.beginObject()
            writer.key("ok" as StaticString)
            writer.bool(true)
            writer.key("id" as StaticString)
            writer.int(1)
            writer.endObject()
        }
        #expect(text == #"{"ok":true,"id":1}"#)
    }

    @Test func runtimeKeysAreEscaped() throws {
        let text = written { writer in
            writer.beginObject()
            writer.dynamicKey("k\"\n\\")
            writer.int(1)
            writer.dynamicKey("é")
            writer.int(2)
            writer.endObject()
        }
        #expect(text == #"{"k\"\n\\":1,"é":2}"#)
        #expect(try JSONParser.parse(text).objectValue?.members.map(\.key) == ["k\"\n\\", "é"])
    }

    @Test func rawJSONIsWrittenVerbatimAsAValue() {
        let text = written { writer in
            writer.beginObject()
            writer.key("ok")
            writer.bool(true)
            writer.key("id")
            writer.raw(utf8(#""a\u0041""#))
            writer.key("n")
            writer.raw(ArraySlice(utf8("1.50")))
            writer.endObject()
        }
        #expect(text == #"{"ok":true,"id":"a\u0041","n":1.50}"#)
        #expect(written { $0.beginArray(); $0.raw(utf8("1")); $0.raw(utf8("2")); $0.endArray() } == "[1,2]")
    }

    @Test func newlineEndsADocumentAndResetsCommas() {
        let text = written { writer in
            writer.beginObject()
            writer.key("a")
            writer.int(1)
            writer.endObject()
            writer.newline()
            writer.beginObject()
            writer.endObject()
            writer.newline()
            writer.int(3)
            writer.newline()
        }
        #expect(text == "{\"a\":1}\n{}\n3\n")
    }

    @Test func theEchoedIdSurvivesParseAndWrite() throws {
        let request = utf8(#"{"op":"x","id":  1.50 }"#)
        let raw = try #require(try parseCapturing(String(decoding: request, as: UTF8.self)).raw)
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("id")
        writer.raw(ArraySlice(raw.utf8))
        writer.endObject()
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #"{"id":1.50}"#)
    }

    @Test func valueWritesNumbersVerbatimAndKeepsMemberOrder() {
        let value = object(
            ("z", number("1.50")), ("a", .array([number("-0"), number("1E+2"), .null])), ("z", .string("dup")),
            ("o", object(("t", .bool(true)))), ("e", .array([]))
        )
        #expect(String(decoding: written(value), as: UTF8.self)
            == #"{"z":1.50,"a":[-0,1E+2,null],"z":"dup","o":{"t":true},"e":[]}"#)
    }
}

@Suite("JSONWriter: round trip")
struct JSONWriterRoundTripTests {
    /// Random values written out parse back to the same value, and Foundation accepts the output.
    @Test func randomValuesRoundTrip() throws {
        let iterations = JSONParserFuzzTests.iterations
        var foundationChecked = 0
        for iteration in 0..<iterations {
            let seed = 0x5752_4954_4552 &+ UInt64(iteration)
            var generator = RandomJSON(seed: seed)
            let value = generator.value(depth: 1 + generator.random.below(5))
            let bytes = written(value)
            let parsed = try JSONParser.parse(bytes)
            #expect(identical(parsed, value), "seed \(seed): \(describeBytes(bytes))")
            #expect(identical(try JSONParser.parse(written(parsed)), value), "seed \(seed)")
            guard !value.containsNumberBeyondDouble else { continue }
            let foundation = try #require(JSONParserFuzzTests.foundationParse(bytes), "seed \(seed): \(describeBytes(bytes))")
            #expect(JSONParserFuzzTests.agrees(value, foundation), "seed \(seed): \(describeBytes(bytes))")
            foundationChecked += 1
        }
        #expect(foundationChecked > iterations / 2)
    }
}
