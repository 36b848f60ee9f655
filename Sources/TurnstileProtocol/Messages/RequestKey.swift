/// A request `id` reduced to what identifies it, so that `cancel`'s `target` matches the id
/// it names whatever its spelling: strings by content, numbers by exact decimal value
/// (`1` = `1.0` = `10e-1`, while two integers beyond 64 bits that round to one double stay
/// two keys; protocol/PROTOCOL.md, `cancel`).
public struct RequestKey: Hashable, Sendable {
    private let canonical: String

    /// The key of a scalar JSON value.
    public init(_ value: JSONValue) {
        switch value {
        case .string(let text): canonical = "s:" + text
        case .number(let number): canonical = Self.canonicalNumber(number.text)
        case .bool(let flag): canonical = flag ? "true" : "false"
        default: canonical = "null"
        }
    }

    /// A JSON number's exact value as `n:<sign><digits>e<exponent>`, digits without leading or
    /// trailing zeros; zero is `n:0`. The text is valid JSON number syntax (the parser checked
    /// it). An exponent beyond `Int` keeps the text itself: still exact, merely spelling-bound.
    static func canonicalNumber(_ text: String) -> String {
        var bytes = Substring(text).utf8[...]
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { bytes = bytes.dropFirst() }
        var digits: [UInt8] = []
        var fractionDigits = 0
        var inFraction = false
        while let byte = bytes.first, byte != UInt8(ascii: "e"), byte != UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if byte == UInt8(ascii: ".") {
                inFraction = true
                continue
            }
            if digits.isEmpty && byte == UInt8(ascii: "0") {
                if inFraction { fractionDigits += 1 }
                continue
            }
            digits.append(byte)
            if inFraction { fractionDigits += 1 }
        }
        if digits.isEmpty { return "n:0" }
        var exponent = 0
        if !bytes.isEmpty {
            guard let written = Int(String(decoding: bytes.dropFirst(), as: UTF8.self)) else { return "x:" + text }
            exponent = written
        }
        var trailingZeros = 0
        while digits[digits.count - 1 - trailingZeros] == UInt8(ascii: "0") { trailingZeros += 1 }
        digits.removeLast(trailingZeros)
        let (shifted, overflow) = exponent.subtractingReportingOverflow(fractionDigits - trailingZeros)
        if overflow { return "x:" + text }
        return "n:" + (negative ? "-" : "") + String(decoding: digits, as: UTF8.self) + "e\(shifted)"
    }
}

/// Why a request could not be decoded: the error code, the field to blame, and a message.
public struct RequestError: Error, Sendable, Equatable {
    public var code: ErrorCode
    public var field: String?
    public var message: String

    public init(_ code: ErrorCode, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }
}
