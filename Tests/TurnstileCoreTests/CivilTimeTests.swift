import Testing
@testable import TurnstileCore

/// HTTP dates and `Retry-After` values, as providers send them.
@Suite("Retry-After and HTTP dates")
struct CivilTimeTests {
    // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's own example.
    let example = WallTime(unixMilliseconds: 784_111_777_000)

    @Test(arguments: ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"])
    func parsesAllThreeHTTPDateForms(text: String) {
        #expect(CivilTime.parseHTTPDate(text) == example)
    }

    @Test(arguments: ["", "tomorrow", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "06 Nov 1994"])
    func refusesNonDates(text: String) {
        #expect(CivilTime.parseHTTPDate(text) == nil)
    }

    @Test func retryAfterSecondsDatesAndMilliseconds() {
        let wall = example.adding(milliseconds: -90_000)
        #expect(RetryAfter.header("120").delayMilliseconds(wall: wall) == 120_000)
        #expect(RetryAfter.header(" 7 ").delayMilliseconds(wall: wall) == 7000)
        #expect(RetryAfter.header("Sun, 06 Nov 1994 08:49:37 GMT").delayMilliseconds(wall: wall) == 90_000)
        #expect(RetryAfter.header("Sun, 06 Nov 1994 08:49:37 GMT").delayMilliseconds(wall: example.adding(milliseconds: 5)) == 0,
                "a date in the past is no delay")
        #expect(RetryAfter.milliseconds(2500).delayMilliseconds(wall: wall) == 2500)
        #expect(RetryAfter.header("-5").delayMilliseconds(wall: wall) == nil)
        #expect(RetryAfter.header("1.5").delayMilliseconds(wall: wall) == nil)
        #expect(RetryAfter.header("soon").delayMilliseconds(wall: wall) == nil)
    }

    @Test func daysFromCivilRoundTrips() {
        for days in stride(from: Int64(-800_000), through: 800_000, by: 997) {
            let (y, m, d) = CivilTime.civil(fromDays: days)
            #expect(CivilTime.days(fromCivil: y, m, d) == days)
        }
    }
}
