import Testing
@testable import TurnstileProtocol

/// `cancel` finds a waiting request by its `id`: keys are equal exactly when the ids have the
/// same exact value, however spelled.
@Suite("Request ids match by exact value")
struct RequestKeyTests {
    func key(_ number: String) -> RequestKey { RequestKey(.number(JSONNumber(text: number))) }

    @Test(arguments: [("1", "1.0"), ("1", "1e0"), ("1", "10e-1"), ("1", "0.1E1"), ("0", "-0"), ("0", "0.000e5"),
                      ("-25", "-2.5e1"), ("100", "1e2"), ("123456789012345678901234567890", "1.2345678901234567890123456789e29")])
    func spellingsOfOneValueAreOneKey(lhs: String, rhs: String) {
        #expect(key(lhs) == key(rhs))
        #expect(key(lhs).hashValue == key(rhs).hashValue)
    }

    @Test(arguments: [("18446744073709551616", "18446744073709551617"), ("9223372036854775808", "9223372036854775809"),
                      ("1", "-1"), ("1", "1.0000000000000000000001"), ("1e400", "1e401"), ("1e-400", "0"),
                      ("99999999999999999999e99999999999999999999", "99999999999999999999e99999999999999999998")])
    func differentValuesAreDifferentKeys(lhs: String, rhs: String) {
        #expect(key(lhs) != key(rhs))
    }

    @Test func stringsAndNumbersNeverMatch() {
        #expect(RequestKey(.string("1")) != key("1"))
        #expect(RequestKey(.bool(true)) != RequestKey(.string("true")))
    }
}
