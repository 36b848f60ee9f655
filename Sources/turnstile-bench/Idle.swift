#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// `idle`: N connections each holding a lease (heartbeating, for Turnstile); reports the
/// server's resident memory per connection: (RSS with them − RSS before) / N, from /proc.
struct Idle: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Server memory per idle connection holding a lease.")

    @Option(help: "The server's socket.") var socket: String
    @Option(help: "turnstile, floor or redis.") var target: Target = .turnstile
    @Option(name: .customLong("server-pid"), help: "The server's pid (its RSS is read from /proc).") var serverPID: Int32
    @Option(help: "Connections.") var connections = 10_000
    @Option(help: "Seconds to hold them (heartbeating at once, then every third of the ttl) before measuring.") var seconds = 5.0
    @Option(name: .customLong("ttl-ms"), help: "The leases' ttl (Turnstile).") var ttlMilliseconds = 60_000
    @Flag(help: "Print one JSON line.") var json = false

    func run() throws {
        let scripts = target == .redis ? try RedisSemaphore.load(socket: socket) : nil
        let before = ProcessStats.residentBytes(serverPID)
        var descriptors: [Int32] = []
        var tokens: [String] = []
        descriptors.reserveCapacity(connections)
        for _ in 0..<connections {
            guard let fd = connectUnix(socket) else { throw BenchError("connect failed after \(descriptors.count) connections") }
            descriptors.append(fd)
            let request: [UInt8]
            switch target {
            case .turnstile: request = Array(#"{"op":"acquire","ttl_ms":\#(ttlMilliseconds)}"#.utf8) + [0x0A]
            case .floor: request = Array(#"{"op":"acquire"}"#.utf8) + [0x0A]
            case .redis: request = RESP.command(["EVALSHA", scripts!.acquireSHA, "3", "sem", "next", "held", "1000000"])
            }
            guard writeAll(fd, request), let answer = readLine(fd), answer.contains("ok\":true") || answer.hasPrefix(":") else {
                throw BenchError("connection \(descriptors.count) was not granted")
            }
            tokens.append(answer)
        }
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        var nextBeat = monotonicNanoseconds()  // a first round at once: every lease heartbeated at least once
        var lost = 0
        while monotonicNanoseconds() < deadline {
            var nothing = pollfd(fd: -1, events: 0, revents: 0)
            _ = poll(&nothing, 1, Int32(min(1000, (deadline - monotonicNanoseconds()) / 1_000_000)))
            if target == .turnstile && monotonicNanoseconds() >= nextBeat {
                for (fd, answer) in zip(descriptors, tokens) {
                    let token = answer.split(separator: "\"").drop { $0 != "lease" }.dropFirst(2).first.map(String.init) ?? ""
                    _ = writeAll(fd, Array(#"{"op":"heartbeat","lease":"\#(token)"}"#.utf8) + [0x0A])
                    if readLine(fd)?.hasPrefix(#"{"ok":true"#) != true { lost += 1 }
                }
                nextBeat = monotonicNanoseconds() + UInt64(ttlMilliseconds) * 1_000_000 / 3
            }
        }
        let after = ProcessStats.residentBytes(serverPID)
        let perConnection = Double(after - before) / Double(connections)
        if json {
            print(#"{"workload":"idle","target":"\#(target.rawValue)","connections":\#(connections),"rss_before_kib":\#(before / 1024),"rss_after_kib":\#(after / 1024),"bytes_per_connection":\#(Int(perConnection))}"#)
        } else {
            print("idle \(target.rawValue) c=\(connections): RSS \(before / 1024) KiB → \(after / 1024) KiB, \(Int(perConnection)) bytes per connection holding a lease, \(lost) heartbeats failed")
        }
        for fd in descriptors { close(fd) }
        if lost > 0 { throw ExitCode(1) }
    }
}
