import ArgumentParser

/// `turnstile-bench`: measurements of Turnstile, in process and over its socket.
@main
struct TurnstileBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turnstile-bench",
        abstract: "Benchmarks for Turnstile (see `make bench`).",
        subcommands: [CoreBenchmark.self])
}
