import Testing
@testable import TurnstileCore

/// `Retry-After` values are copied from whatever a provider (or a client) sent: no text may
/// take the calendar arithmetic out of range, and every delay is clamped to the longest throttle.
@Suite("Hostile Retry-After values are refused or clamped, never trap")
struct HostileRetryAfterTests {
    let wall = WallTime(unixMilliseconds: 1_790_000_000_000)
    let week = RetryAfter.millisecondsMax

    /// Texts that are not HTTP dates in any of the three forms.
    @Test(arguments: [
        "Sun Nov  6 08:49:37 300000000", "Sunday, 06-Nov-99999999999 08:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT", "Sun, 06 Nov -1994 08:49:37 GMT", "Sunday, 06-Nov--94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 -1994", "Sun, 99999999999999999999 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 99999999999999999999:49:37 GMT", "Sun, 06 Nov 1994 08:49:-1 GMT",
        "Sun, 06 Nov 1994 08:49:37:12 GMT", "Sun, 06 Nov 1994 08::37 GMT", "Sun, 06 Nov 1994 +8:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT", "Sunday, 06-Nov-9 08:49:37 GMT", "Sun Nov 999 08:49:37 1994",
        "Sun, ٠٦ Nov 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:60:00 GMT",
    ])
    func nonDatesAreRefused(text: String) {
        #expect(CivilTime.parseHTTPDate(text) == nil)
        #expect(RetryAfter.header(text).delayMilliseconds(wall: wall) == nil)
    }

    /// Texts that are neither whole seconds nor dates: `bad_request` at the daemon.
    @Test(arguments: ["-5", "1e400", "1.5", "-99999999999999999999", "0x10", "5s", "∞", "NaN"])
    func nonSecondsAreRefused(text: String) {
        #expect(RetryAfter.header(text).delayMilliseconds(wall: wall) == nil)
    }

    @Test func hugeSecondsAreClampedToAWeek() {
        for text in ["99999999999999999999", "18446744073709551615", "18446744073709552", "604801",
                     String(repeating: "9", count: 5000)] {
            #expect(RetryAfter.header(text).delayMilliseconds(wall: wall) == week, "\(text.prefix(30))")
        }
        #expect(RetryAfter.header("604800").delayMilliseconds(wall: wall) == week)
        #expect(RetryAfter.header("0").delayMilliseconds(wall: wall) == 0)
        #expect(RetryAfter.milliseconds(UInt64.max).delayMilliseconds(wall: wall) == week)
    }

    /// The latest date each form can write (year 9999) is far ahead: clamped.
    @Test(arguments: ["Fri, 31 Dec 9999 23:59:59 GMT", "Friday, 31-Dec-9999 23:59:59 GMT", "Fri Dec 31 23:59:59 9999"])
    func farFutureDatesAreClampedToAWeek(text: String) {
        #expect(CivilTime.parseHTTPDate(text) == WallTime(unixMilliseconds: 253_402_300_799_000))
        #expect(RetryAfter.header(text).delayMilliseconds(wall: wall) == week)
    }

    @Test(arguments: ["Mon, 01 Jan 0000 00:00:00 GMT", "Mon Jan  1 00:00:00 0000", "Thu, 01 Jan 1970 00:00:00 GMT"])
    func ancientDatesAreNoDelay(text: String) {
        #expect(RetryAfter.header(text).delayMilliseconds(wall: wall) == 0)
        #expect(RetryAfter.header(text).delayMilliseconds(wall: WallTime(unixMilliseconds: .max)) == 0)
        #expect(RetryAfter.header(text).delayMilliseconds(wall: WallTime(unixMilliseconds: .min)) == week)
    }

    @Test func aDateWithinTheWeekIsExact() {
        #expect(RetryAfter.header("Sun, 06 Nov 1994 08:49:37 GMT")
            .delayMilliseconds(wall: WallTime(unixMilliseconds: 784_111_777_000 - 3_600_000)) == 3_600_000)
        #expect(RetryAfter.header("Sunday, 06-Nov-1994 08:49:37 GMT")
            .delayMilliseconds(wall: WallTime(unixMilliseconds: 784_111_777_000 - 1000)) == 1000)
    }
}
