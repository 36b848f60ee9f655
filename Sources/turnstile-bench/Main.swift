import ArgumentParser

/// `turnstile-bench`: measurements of Turnstile, in process and over its socket.
@main
struct TurnstileBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turnstile-bench",
        abstract: "Benchmarks for Turnstile (see `make bench`).",
        subcommands: [Suite.self, PingPong.self, Contend.self, Idle.self, Reclaim.self, Hostile.self, Soak.self, RecordModels.self, CoreBenchmark.self, Flood.self, EtcdRecipe.self, ClusterSuite.self, ClusterPingPong.self])
}

/// A number with a fixed count of decimals (Foundation-free `String(format: "%.Nf")`).
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int64(scaled / scale)
    let fraction = Int64(scaled) - whole * Int64(scale)
    let sign = value < 0 && scaled > 0 ? "-" : ""
    guard digits > 0 else { return sign + "\(whole)" }
    let fractionText = String(fraction)
    return sign + "\(whole)." + String(repeating: "0", count: digits - fractionText.count) + fractionText
}
