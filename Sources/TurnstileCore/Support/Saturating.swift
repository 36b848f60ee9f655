/// Arithmetic that clamps to the type's range instead of trapping.
///
/// Clients, files and configs supply numbers the core adds and multiplies (token counts, costs,
/// durations); an overflow there must never stop the daemon. Where a sum has a sensible
/// meaning past the range ("more than can be counted"), it saturates with these.
extension FixedWidthInteger {
    /// `self + other`, clamped to `Self.min...Self.max`.
    public func addingSaturated(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }

    /// `self × other`, clamped to `Self.min...Self.max`.
    public func multipliedSaturated(by other: Self) -> Self {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        guard overflow else { return product }
        return (self < 0) == (other < 0) ? .max : .min
    }
}

extension Double {
    /// `self + other`, clamped to the largest finite magnitude: a sum of finite values stays
    /// finite (JSON has no infinity; a cost sum that overflowed would otherwise be `null`).
    public func addingSaturated(_ other: Double) -> Double {
        let sum = self + other
        if sum.isFinite || sum.isNaN { return sum }
        return sum > 0 ? .greatestFiniteMagnitude : -.greatestFiniteMagnitude
    }
}
