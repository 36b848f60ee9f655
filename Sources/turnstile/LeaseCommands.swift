#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileClient
import TurnstileProtocol

/// The options of an acquire, shared by `run` and `acquire`.
struct PermitOptions: ParsableArguments {
    @Option(help: "The project (a pause flag file name).") var project: String?
    @Option(help: "time, issue, mention or any.") var mode: String?
    @Option(help: "The model as provider/model.") var model: String?
    @Option(help: "Fallback models, comma-separated provider/model.") var fallback: String?
    @Option(help: "Providers the work needs besides its model's, comma-separated.") var providers: String?
    @Option(help: "The working tree: one lease per workspace at a time (relative paths and symlinks are resolved here).")
    var workspace: String?
    @Option(help: "Whose provider throttles apply.") var tenant: String?
    @Option(help: "Priority under the priority policy.") var priority: Int?
    @Option(help: "Lease ttl (300ms, 30s, 5m…; default: the daemon's default_ttl_ms, 30s unless configured); heartbeats come at a third of it.")
    var ttl: String?
    @Option(help: "How long to wait for a permit (default: forever; 0: do not wait).") var wait: String?
    @Option(help: "A label for status and watch.") var holder: String?
    @Option(name: .customLong("pool"), help: ArgumentHelp(
        "Take a unit of a pool, NAME for a configured one or NAME=LIMIT to define it as `sem --id NAME -j LIMIT` does (repeatable).",
        valueName: "NAME[=LIMIT]"))
    var pools: [String] = []

    /// The acquire request.
    func parameters(holder defaultHolder: String?) throws -> AcquireParameters {
        var parameters = AcquireParameters()
        parameters.project = project
        parameters.mode = mode
        parameters.model = model
        parameters.fallback = Self.list(fallback)
        parameters.providers = Self.list(providers)
        parameters.workspace = workspace.map(Self.resolved)
        parameters.tenant = tenant
        parameters.holder = holder ?? defaultHolder
        parameters.priority = priority
        if !pools.isEmpty {
            for entry in pools {
                let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard !parts[0].isEmpty else { throw ValidationError("--pool: give NAME or NAME=LIMIT, not \(entry)") }
                parameters.pools.append(parts[0])
                if parts.count == 2 {
                    guard let limit = Int(parts[1]), limit >= 1 else {
                        throw ValidationError("--pool \(entry): the limit is a whole number of at least 1")
                    }
                    parameters.poolLimits.append((parts[0], limit))
                }
            }
        }
        if let ttl {
            guard let ttlMilliseconds = Durations.milliseconds(ttl) else { throw ValidationError("--ttl: not a duration: \(ttl)") }
            parameters.ttlMilliseconds = ttlMilliseconds
        }
        parameters.waitMilliseconds = try waitMilliseconds()
        return parameters
    }

    /// A comma-separated option as a list, entries trimmed, empty ones dropped (as the daemon
    /// reads a comma-separated string).
    static func list(_ text: String?) -> [String] {
        guard let text else { return [] }
        return text.split(separator: ",").map { entry in
            var entry = entry
            while entry.first == " " || entry.first == "\t" { entry.removeFirst() }
            while entry.last == " " || entry.last == "\t" { entry.removeLast() }
            return String(entry)
        }.filter { !$0.isEmpty }
    }

    /// A workspace as the daemon must see it: the same directory is the same lock whoever
    /// names it and from wherever, so a relative path is made absolute against this process's
    /// directory and symlinks are resolved (when the path exists; else it is only made absolute).
    static func resolved(_ path: String) -> String {
        if let real = realpath(path, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }

    /// `--wait` in milliseconds; absent means forever (the largest exact JSON integer).
    func waitMilliseconds() throws -> UInt64 {
        guard let wait else { return 9_007_199_254_740_991 }
        guard let value = Durations.milliseconds(wait) else { throw ValidationError("--wait: not a duration: \(wait)") }
        return value
    }
}

/// `turnstile acquire`: a detached lease, printed as the daemon's JSON answer.
struct Acquire: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acquire",
        abstract: "Take a detached lease and print the answer as JSON (exit 75 if none within --wait).")

    @OptionGroup var connection: SocketOption
    @OptionGroup var permit: PermitOptions
    @Option(help: "A process whose exit releases the lease (e.g. --pid $$).") var pid: Int32?
    @Flag(help: "Print only the lease token (for TOKEN=$(turnstile acquire --token …)).") var token = false
    @OptionGroup var output: OutputOptions

    func run() throws {
        var parameters = try permit.parameters(holder: nil)
        parameters.detach = true
        parameters.pid = pid
        let answer = try connection.connect().request(.acquire(parameters))
        if let failure = answer.failure, failure.errorCode == .unavailable || failure.errorCode == .timeout {
            if output.json { printJSON(answer.object) } else {
                printError("turnstile: no permit: \(failure.reason ?? "?") (\(failure.message))")
            }
            throw Exit.noPermit
        }
        try finish(answer) { answer in
            if token { printLine(answer.grant?.lease ?? "") } else if output.json { printJSON(answer.object) } else {
                printLine(HumanLines.granted(answer))
            }
        }
    }
}

/// `turnstile heartbeat TOKEN…`.
struct Heartbeat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heartbeat", abstract: "Extend leases by their ttl.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "Lease tokens.") var tokens: [String]

    func run() throws {
        let client = try connection.connect()
        let answer = try client.request(tokens.count == 1 ? .heartbeat(lease: tokens[0]) : .heartbeatMany(leases: tokens))
        try finish(answer, output) { HumanLines.heartbeat($0, tokens: tokens) }
        // One answer for several tokens succeeds as a whole; a token that failed inside it is
        // a failure of the command all the same.
        let results = answer["results"]?.arrayValue?.compactMap(\.objectValue) ?? []
        let failed = zip(tokens, results).filter { $0.1["ok"]?.boolValue != true }
        for (token, result) in failed {
            printError("turnstile: \(token.prefix(8))…: \(result["error"]?.stringValue ?? "error")")
        }
        if !failed.isEmpty { throw Exit.refused }
    }
}

/// `turnstile release TOKEN`.
struct Release: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release", abstract: "Give a lease back.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The lease token.") var token: String

    func run() throws {
        try finish(connection.connect().request(.release(lease: token)), output) { answer in
            ["released after \(HumanLines.duration(answer["held_ms"]))"]
        }
    }
}

/// `turnstile attach TOKEN`: holds a lease from this process until interrupted. The lease is
/// bound to this command's connection (and to `--pid`'s process), heartbeated at a third of
/// its ttl, and released when SIGINT, SIGTERM or SIGHUP ends the command. It is how a shell
/// takes over a detached lease for a while; it never returns on its own while the lease lives.
struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Hold a lease until interrupted: bind it here, heartbeat it, release it on SIGINT/SIGTERM/SIGHUP (exit 70 if it is lost).")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The lease token.") var token: String
    @Option(help: "A process whose exit releases the lease.") var pid: Int32?

    func run() throws {
        var stops = sigset_t()
        sigemptyset(&stops)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&stops, signal) }
        pthread_sigmask(SIG_BLOCK, &stops, nil)
        let client = try connection.connect()
        let attached = try client.request(.attach(lease: token, pid: pid))
        try finish(attached) { _ in }
        let ttl = max(attached["ttl_ms"]?.numberValue?.int64 ?? 30_000, 300)
        printError("turnstile: holding lease fence \(attached["fence"]?.numberValue?.text ?? "?") until interrupted")
        while true {
            var wait = timespec(tv_sec: Int(ttl / 3 / 1000), tv_nsec: Int(ttl / 3 % 1000) * 1_000_000)
            let signal = sigtimedwait(&stops, nil, &wait)
            if signal > 0 {
                _ = try? client.call(.release(lease: token), timeoutMilliseconds: 5_000)
                return
            }
            let beat = try client.request(.heartbeat(lease: token))
            if !beat.ok {
                printError("turnstile: the lease was lost: \(beat.error ?? "error")")
                throw Exit.leaseLost
            }
        }
    }
}

/// `turnstile revoke --fence N | TOKEN` (admin).
struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Take a lease away (admin).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Option(help: "The lease's fence.") var fence: UInt64?
    @Argument(help: "The lease token.") var token: String?

    func validate() throws {
        if (fence == nil) == (token == nil) { throw ValidationError("give either --fence N or a token") }
    }

    func run() throws {
        let request: ClientRequest = fence.map { .revokeFence($0) } ?? .revoke(lease: token!)
        try finish(connection.connect().request(request), output) { _ in
            ["revoked" + (fence.map { " fence \($0)" } ?? "")]
        }
    }
}

/// `turnstile park TOKEN`: frees a lease's capacity but keeps its workspace lock (a run
/// paused for a human); `unpark` takes the capacity back.
struct Park: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "park", abstract: "Free a lease's capacity but keep its workspace lock.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The lease token.") var token: String

    func run() throws {
        try finish(connection.connect().request(.park(lease: token)), output) { answer in
            ["parked fence \(HumanLines.text(answer["fence"])): its capacity is free, its workspace kept"]
        }
    }
}

/// `turnstile unpark TOKEN [--wait D]`: takes a parked lease's capacity back, waiting like
/// `acquire` (exit 75 if none within `--wait`).
struct Unpark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpark",
        abstract: "Take a parked lease's capacity back, waiting like acquire (exit 75 if none within --wait).")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The lease token.") var token: String
    @Option(help: "How long to wait for the capacity (default: forever; 0: do not wait).") var wait: String?

    func run() throws {
        var waitMilliseconds: UInt64 = 9_007_199_254_740_991
        if let wait {
            guard let value = Durations.milliseconds(wait) else { throw ValidationError("--wait: not a duration: \(wait)") }
            waitMilliseconds = value
        }
        let answer = try connection.connect().request(.unpark(lease: token, waitMilliseconds: waitMilliseconds))
        if let failure = answer.failure, failure.errorCode == .unavailable || failure.errorCode == .timeout {
            if output.json { printJSON(answer.object) } else {
                printError("turnstile: no capacity: \(failure.reason ?? "?") (\(failure.message))")
            }
            throw Exit.noPermit
        }
        try finish(answer, output) { [HumanLines.granted($0)] }
    }
}

/// `turnstile cancel HOLDER`: gives up the waiting acquires held as HOLDER (a `run` or
/// `acquire` still queued, say a cron job that is no longer wanted): each exits 75 as if its
/// `--wait` had ended. Only your own, unless you are an admin.
struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel the waiting acquires held as HOLDER (your own; an admin's: anyone's).",
        discussion: "The cancelled run or acquire exits 75 (or its --conflict-exit-code), COMMAND never started.")
    @OptionGroup var connection: SocketOption
    @OptionGroup var output: OutputOptions
    @Argument(help: "The holder label the waiting run or acquire was given (--holder; run's default is COMMAND's name).")
    var holder: String

    func run() throws {
        try finish(connection.connect().request(.cancelHolder(holder)), output) { answer in
            ["cancelled \(HumanLines.text(answer["cancelled"])) waiting acquire(s) held as \(TerminalText.safe(holder))"]
        }
    }
}
