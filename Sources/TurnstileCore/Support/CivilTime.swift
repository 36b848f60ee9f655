/// Calendar arithmetic for the two textual time formats Turnstile speaks: RFC 3339 (what it
/// writes) and HTTP dates (what providers send in `Retry-After`).
///
/// Written by hand, on Howard Hinnant's days-from-civil algorithm, so that the core needs
/// neither Foundation nor a time zone database: everything here is UTC.
public enum CivilTime {
    /// Formats a wall time as RFC 3339 UTC with milliseconds: `2026-11-22T09:30:00.123Z`.
    public static func rfc3339(_ time: WallTime) -> String {
        let millisecondsPerDay: Int64 = 86_400_000
        var days = time.unixMilliseconds / millisecondsPerDay
        var rest = time.unixMilliseconds % millisecondsPerDay
        if rest < 0 {
            rest += millisecondsPerDay
            days -= 1
        }
        let (year, month, day) = civil(fromDays: days)
        let hour = rest / 3_600_000
        let minute = rest / 60_000 % 60
        let second = rest / 1000 % 60
        let millisecond = rest % 1000
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T"
            + "\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(millisecond, 3))Z"
    }

    /// Parses an HTTP date in any of the three forms RFC 9110 §5.6.7 requires recipients to
    /// accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
    /// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
    ///
    /// Every field is read as a bounded run of ASCII digits (years have four digits, or two in
    /// RFC 850), so no text can take the calendar arithmetic out of range.
    /// - Returns: the time, or nil if the text is not an HTTP date.
    public static func parseHTTPDate(_ text: String) -> WallTime? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }).map(String.init)
        guard words.count >= 4 else { return nil }
        var year: Int64, month: Int64, day: Int64, clock: String
        if words.count >= 5, let monthIndex = monthNumber(words[2]) {
            // IMF-fixdate: weekday, day, month, year, time, GMT
            guard let d = digits(words[1], 1...2), let y = digits(words[3], 4...4) else { return nil }
            (year, month, day, clock) = (y, monthIndex, d, words[4])
        } else if words[1].contains("-") {
            // RFC 850: weekday, dd-Mon-yy, time, GMT
            let parts = words[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let d = digits(parts[0], 1...2), let m = monthNumber(parts[1]),
                  let yy = digits(parts[2], 2...4) else { return nil }
            // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
            year = parts[2].utf8.count == 2 ? (yy < 70 ? 2000 + yy : 1900 + yy) : yy
            (month, day, clock) = (m, d, words[2])
        } else if let m = monthNumber(words[1]), words.count >= 5 {
            // asctime: weekday, month, day, time, year
            guard let d = digits(words[2], 1...2), let y = digits(words[4], 4...4) else { return nil }
            (year, month, day, clock) = (y, m, d, words[3])
        } else {
            return nil
        }
        let clockParts = clock.split(separator: ":", omittingEmptySubsequences: false).map { digits(String($0), 1...2) }
        guard clockParts.count == 3, let hour = clockParts[0], let minute = clockParts[1], let second = clockParts[2],
              (1...31).contains(day), hour <= 23, minute <= 59, second <= 60 else { return nil }
        // Years 0...9999 keep every product below 2^49: no overflow is possible.
        let seconds = days(fromCivil: year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        return WallTime(unixMilliseconds: seconds * 1000)
    }

    /// A run of `length` ASCII digits as a number, or nil (signs, spaces and other digits
    /// are refused, so the value is bounded by the length).
    private static func digits(_ text: String, _ length: ClosedRange<Int>) -> Int64? {
        guard length.contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return text.utf8.reduce(0) { $0 * 10 + Int64($1 - 48) }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01.
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"]

    private static func monthNumber(_ word: String) -> Int64? {
        guard let index = monthNames.firstIndex(of: word.lowercased()) else { return nil }
        return Int64(index + 1)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
