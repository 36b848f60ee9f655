import Foundation
import Testing
@testable import TurnstileProtocol

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
