import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Issue 5's hostile local clients: connections that never send, readers that never read, a
/// client pipelining 100,000 requests without reading. The daemon stays correct for everyone
/// else and within its memory bounds. (How fast it stays is measured by `make bench`'s
/// `hostile` workload, not asserted here.)
@Suite("Hostile clients", .timeLimit(.minutes(2)))
struct HostileClientTests {
    /// Under AddressSanitizer (`make test-asan`) memory figures mean nothing: its redzones and
    /// quarantine multiply them. The bounds are checked in ordinary builds only.
    static let memoryIsMeasurable = ProcessInfo.processInfo.environment["TURNSTILE_TEST_SANITIZED"] == nil

    /// A holder doing acquire → release pairs, checking every answer and that fences rise.
    struct Bystander {
        let client: TurnstileClient
        var lastFence: Int64 = 0
        var pairs = 0

        init(_ daemon: Daemon) throws { client = try daemon.client() }

        /// One pair; false if any answer was wrong.
        mutating func pair() throws -> Bool {
            let granted = try client.ask("acquire", [("holder", .text("bystander"))])
            guard granted.ok, let fence = granted["fence"]?.numberValue?.int64, fence > lastFence,
                  let lease = granted["lease"] else { return false }
            lastFence = fence
            guard try client.ask("release", [("lease", lease)]).ok else { return false }
            pairs += 1
            return true
        }
    }

    @Test func tenThousandConnectionsThatNeverSendCostLittleAndDisturbNoOne() throws {
        let wanted = 10_000
        let daemon = try Daemon(config: "[server]\nmax_connections = 12000\n")
        var bystander = try Bystander(daemon)
        for _ in 0..<200 { #expect(try bystander.pair()) }
        let before = try DaemonMemory(daemon)
        let count = min(wanted, Self.raiseDescriptorLimit() - 200)
        let silent = (0..<count).compactMap { _ in connectSilently(daemon.socketPath) }
        defer { silent.forEach { close($0) } }
        #expect(silent.count == wanted, "this machine allows \(count) descriptors")
        var connections: Int64 = 0
        for _ in 0..<10_000 where connections != Int64(silent.count + 1) {
            connections = try bystander.client.ask("status")["server"]?.objectValue?["connections"]?.numberValue?.int64 ?? 0
        }
        #expect(connections == Int64(silent.count + 1), "every silent connection was accepted")
        for _ in 0..<1000 { #expect(try bystander.pair()) }
        let after = try DaemonMemory(daemon)
        let perConnection = (after.residentBytes - before.residentBytes) / max(1, silent.count)
        if Self.memoryIsMeasurable { #expect(perConnection < 4096, "\(perConnection) bytes per silent connection") }
    }

    @Test func aClientPipelining100000RequestsWithoutReadingIsCutOffAndOthersAreAnswered() throws {
        let daemon = try Daemon(config: "[server]\nmax_output_bytes = 65536\n")
        var bystander = try Bystander(daemon)
        for _ in 0..<200 { #expect(try bystander.pair()) }
        let before = try DaemonMemory(daemon)
        let flood = Flood(socketPath: daemon.socketPath, line: #"{"op":"status"}"#, count: 100_000)
        while !flood.finished {
            #expect(try bystander.pair())
        }
        #expect(flood.cutOff, "the flooder was cut off after \(flood.sent) requests")
        #expect(flood.sent < 100_000)
        #expect(daemon.logShows("cutting off a client that does not read"))
        for _ in 0..<100 { #expect(try bystander.pair()) }
        let after = try DaemonMemory(daemon)
        // 100,000 unread status answers would be tens of MiB; the bound keeps the peak near
        // max_output_bytes plus one read of input.
        if Self.memoryIsMeasurable {
            #expect(after.peakBytes - before.peakBytes < 16 << 20, "peak grew by \(after.peakBytes - before.peakBytes) bytes")
        }
    }

    /// hello answers stay under the high water (fair turns only); status answers, with the
    /// high water at 32 KiB, block the connection many times on the way (backpressure).
    @Test(arguments: [("hello", ""), ("status", "[server]\nmax_output_bytes = 65536\n")])
    func aReadingClientsPipelineIsAnsweredWholeAndInOrder(op: String, config: String) throws {
        let daemon = try Daemon(config: config)
        let count = 20_000
        let stream = try SocketStream(path: daemon.socketPath)
        var requests: [UInt8] = []
        for id in 0..<count { requests += Array(#"{"id":\#(id),"op":"\#(op)"}"#.utf8) + [0x0A] }
        let (descriptor, bytes) = (stream.descriptor, requests)
        Thread.detachNewThread { _ = sendAll(descriptor, bytes) }
        var bystander = try Bystander(daemon)
        var ids: [Int64] = []
        while ids.count < count {
            guard let line = try stream.readLine(timeoutMilliseconds: 10_000) else { break }
            let answer = try JSONParser.parse(line).objectValue
            #expect(answer?["ok"]?.boolValue == true)
            ids.append(answer?["id"]?.numberValue?.int64 ?? -1)
            if ids.count % 2000 == 0 { #expect(try bystander.pair()) }
        }
        #expect(ids == (0..<Int64(count)).map { $0 }, "every answer, in order")
        #expect(!daemon.log.contains("cutting off"), "a client that reads is never cut off")
    }

    @Test func watchersThatNeverReadAreCutOffWhileTheEventsGoOn() throws {
        let daemon = try Daemon(config: "[server]\nmax_output_bytes = 65536\n")
        let watchers = try (0..<20).map { _ in try RawConnection(daemon) }
        for watcher in watchers { try watcher.send(#"{"op":"watch"}"# + "\n") }
        var bystander = try Bystander(daemon)
        for _ in 0..<3000 { #expect(try bystander.pair()) }
        for watcher in watchers {
            #expect(watcher.closedByDaemon(), "a watcher that never read was cut off")
        }
        #expect(daemon.logShows("cutting off a client that does not read"))
        #expect(try bystander.pair())
    }

    @Test func oneAnswerLargerThanTheOutputLimitIsStillSentWhole() throws {
        let daemon = try Daemon(config: "[limits]\nglobal = 1000\n[server]\nmax_output_bytes = 65536\n")
        let holder = try daemon.client()
        for index in 0..<800 {
            #expect(try holder.ask("acquire", [("holder", .text("holder-\(index)-with-a-long-label"))]).ok)
        }
        let stream = try SocketStream(path: daemon.socketPath)
        try stream.write(Array(#"{"op":"status"}"#.utf8) + [0x0A])
        let line = try stream.readLine(timeoutMilliseconds: 10_000) ?? []
        #expect(line.count > 65_536, "the status answer is over the limit (\(line.count) bytes)")
        #expect(try JSONParser.parse(line).objectValue?["leases"]?.arrayValue?.count == 800)
        #expect(!daemon.log.contains("cutting off"))
    }

    /// Raises this process's descriptor limit to its hard limit; returns the new soft limit.
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(clamping: limit.rlim_cur)
    }
}

/// A thread writing `count` copies of a line to its own connection and never reading.
final class Flood: @unchecked Sendable {
    private let lock = NSLock()
    private var sentLines = 0
    private var wasCutOff = false
    private var done = false

    init(socketPath: String, line: String, count: Int) {
        let chunkLines = 1000
        let chunk = Array(String(repeating: line + "\n", count: chunkLines).utf8)
        Thread.detachNewThread { [self] in
            var cutOff = false
            if let stream = try? SocketStream(path: socketPath) {
                for _ in 0..<(count / chunkLines) {
                    do {
                        try stream.write(chunk)
                    } catch {
                        cutOff = true
                        break
                    }
                    lock.withLock { sentLines += chunkLines }
                }
            }
            lock.withLock { (wasCutOff, done) = (cutOff, true) }
        }
    }

    var finished: Bool { lock.withLock { done } }
    var cutOff: Bool { lock.withLock { wasCutOff } }
    var sent: Int { lock.withLock { sentLines } }
}

/// The daemon's resident and peak resident memory, from /proc.
struct DaemonMemory {
    let residentBytes: Int
    let peakBytes: Int

    init(_ daemon: Daemon) throws {
        guard let pid = daemon.process?.pid,
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else {
            throw DaemonError(message: "no /proc status for the daemon")
        }
        func kibibytes(_ key: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(key) } ?? ""
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        residentBytes = kibibytes("VmRSS:")
        peakBytes = kibibytes("VmHWM:")
    }
}

/// Connects to a Unix socket and returns the bare descriptor (no buffers: ten thousand of them
/// must cost the test process little).
func connectSilently(_ path: String) -> Int32? { try? SocketStream.connect(path: path) }

/// Writes all bytes to a blocking socket; false if the peer went away.
func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool { (try? SocketStream.send(bytes, on: fd)) != nil }
