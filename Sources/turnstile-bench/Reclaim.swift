#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// `reclaim`: how long from a holder's end to the next waiter's grant, over real processes:
/// a holder connection closed, a pid-bound holder SIGKILLed, a silent lease reaching its
/// deadline. Global limit 1 is assumed (`[limits] global = 1` on the daemon under test).
struct Reclaim: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time from a holder's end to the next waiter's grant.")

    @Option(help: "The daemon's socket (configured with global = 1).") var socket: String
    @Option(help: "Rounds per kind.") var rounds = 50
    @Option(name: .customLong("ttl-ms"), help: "The silent lease's ttl.") var ttlMilliseconds = 200
    @Flag(help: "Print JSON lines.") var json = false

    enum Kind: String, CaseIterable {
        case disconnect, sigkill = "sigkill_pid", deadline
    }

    func run() throws {
        for kind in Kind.allCases {
            var samples: [Double] = []
            for _ in 0..<rounds { samples.append(try measure(kind)) }
            samples.sort()
            let median = samples[samples.count / 2]
            let p99 = samples[min(samples.count - 1, Int(Double(samples.count) * 0.99))]
            let worst = samples.last!
            if json {
                print(#"{"workload":"reclaim","kind":"\#(kind.rawValue)","rounds":\#(rounds),"median_ms":\#(format(median)),"p99_ms":\#(format(p99)),"max_ms":\#(format(worst))}"#)
            } else {
                print("reclaim \(kind.rawValue): median \(format(median)) ms, p99 \(format(p99)) ms, max \(format(worst)) ms over \(rounds) rounds")
            }
        }
    }

    private func format(_ value: Double) -> String { fixed(value, 3) }

    /// One round: a holder takes the permit, a waiter queues, the holder ends; milliseconds
    /// from the end (for `deadline`: from the lease's deadline) to the waiter's grant.
    private func measure(_ kind: Kind) throws -> Double {
        guard let holder = connectUnix(socket), let waiter = connectUnix(socket) else { throw BenchError("cannot connect") }
        defer { close(waiter) }
        var child: pid_t = 0
        var request = #"{"op":"acquire","holder":"bench-holder""#
        switch kind {
        case .disconnect: break
        case .sigkill:
            child = try spawnSleeper()
            request += #","detach":true,"pid":\#(child)"#
        case .deadline: request += #","detach":true,"ttl_ms":\#(ttlMilliseconds)"#
        }
        // The lease's deadline is at most ttl after this send, so lateness is an upper bound.
        let sentAt = monotonicNanoseconds()
        guard writeAll(holder, Array((request + "}\n").utf8)), let granted = readLine(holder), granted.contains(#""ok":true"#) else {
            throw BenchError("holder not granted")
        }
        guard writeAll(waiter, Array(#"{"op":"acquire","wait_ms":60000,"notify":true}"#.utf8) + [0x0A]),
              readLine(waiter)?.contains(#""event":"queued""#) == true else { throw BenchError("waiter not queued") }
        let endedAt: UInt64
        switch kind {
        case .disconnect:
            endedAt = monotonicNanoseconds()
            close(holder)
        case .sigkill:
            close(holder)
            endedAt = monotonicNanoseconds()
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
        case .deadline:
            close(holder)
            endedAt = sentAt + UInt64(ttlMilliseconds) * 1_000_000
        }
        guard let answer = readLine(waiter), answer.contains(#""ok":true"#) else { throw BenchError("waiter not granted") }
        let elapsed = Double(Int64(bitPattern: monotonicNanoseconds() &- endedAt)) / 1e6
        // Hand the permit back for the next round.
        if let token = answer.split(separator: "\"").drop(while: { $0 != "lease" }).dropFirst(2).first {
            _ = writeAll(waiter, Array(#"{"op":"release","lease":"\#(token)"}"#.utf8) + [0x0A])
            _ = readLine(waiter)
        }
        return elapsed
    }

    private func spawnSleeper() throws -> pid_t {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("600"), nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawnp(&pid, "sleep", nil, nil, argv, environ) == 0 else { throw BenchError("cannot spawn sleep") }
        return pid
    }
}
