/// Durations as people write them on a command line (README, "The CLI"): a number with a unit, `ms`,
/// `s`, `m` or `h` (`300ms`, `30s`, `1.5m`); a bare number is seconds.
public enum Durations {
    /// Parses a duration.
    /// - Returns: milliseconds, or nil if the text is not a duration.
    public static func milliseconds(_ text: String) -> UInt64? {
        let trimmed = text.lowercased().filter { $0 != " " }
        let units: [(suffix: String, factor: Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var number = Substring(trimmed)
        var factor = 1000.0
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            number = trimmed.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let value = Double(number), value >= 0 else {
            return nil
        }
        let result = (value * factor).rounded()
        return result < 9.007_199_254_740_991e15 ? UInt64(result) : nil
    }

    /// A short human form: `850ms`, `12s`, `3m12s`, `2h03m`.
    public static func describe(milliseconds: UInt64) -> String {
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let seconds = milliseconds / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(pad(seconds % 60))s" }
        return "\(seconds / 3600)h\(pad(seconds / 60 % 60))m"
    }

    private static func pad(_ value: UInt64) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
