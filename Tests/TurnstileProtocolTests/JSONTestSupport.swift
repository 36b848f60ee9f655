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
