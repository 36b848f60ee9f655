#if canImport(Glibc)
import Glibc
#endif

/// One benchmark connection looping acquire → release, in the target's own protocol.
///
/// Nothing is allocated per request, so that the client costs as little as it can beside the
/// server it measures: answers are read into a fixed buffer and framed in place, the acquire
/// request is built once, and the release request is rewritten after its fixed prefix within
/// capacity reserved once. (It still costs more than `turnstile-load`, the C client the suite's
/// ping-pong uses; `hostile` uses this one.) A class, so that its read buffer is allocated once
/// and freed with it.
final class PairClient {
    let fd: Int32
    let target: Target
    private var acquiring = true
    private var sentAt: UInt64 = 0
    /// Received bytes not yet framed are `input[0..<used]`.
    private let input = UnsafeMutablePointer<UInt8>.allocate(capacity: PairClient.inputCapacity)
    private var used = 0
    private let acquireRequest: [UInt8]
    /// The release request: its fixed prefix, written once, then the token and the tail.
    private var releaseRequest: [UInt8]
    private let releasePrefix: Int

    /// Answers are short (turnstiled's acquire answer is about 200 bytes): one that fills the
    /// buffer without a line end is a protocol error.
    private static let inputCapacity = 4096

    init(fd: Int32, target: Target, scripts: RedisSemaphore?) {
        self.fd = fd
        self.target = target
        let prefix: [UInt8]
        switch target {
        case .turnstile, .floor:
            acquireRequest = Array(#"{"op":"acquire"}"#.utf8) + [0x0A]
            prefix = Array(#"{"op":"release","lease":""#.utf8)
        case .redis:
            acquireRequest = RESP.command(["EVALSHA", scripts!.acquireSHA, "3", "sem", "next", "held", "1000000"])
            // Six parts, the token last, written per release.
            prefix = RESP.header(6) + ["EVALSHA", scripts!.releaseSHA, "2", "sem", "held"].flatMap { RESP.bulk(Array($0.utf8)) }
        }
        releasePrefix = prefix.count
        releaseRequest = prefix
        releaseRequest.reserveCapacity(prefix.count + 256)
    }

    deinit { input.deallocate() }

    /// Sends the first acquire.
    func start() { sendAcquire() }

    private func sendAcquire() {
        acquiring = true
        sentAt = monotonicNanoseconds()
        _ = writeAll(fd, acquireRequest)
    }

    private func sendRelease(_ token: UnsafeBufferPointer<UInt8>) {
        // Within the capacity reserved in init (tokens are 32 bytes): no reallocation.
        releaseRequest.removeSubrange(releasePrefix...)
        switch target {
        case .turnstile, .floor:
            releaseRequest.append(contentsOf: token)
            releaseRequest.append(contentsOf: Self.releaseTail)
        case .redis:
            // A RESP bulk string, `$<length>\r\n<token>\r\n`, its length in decimal.
            releaseRequest.append(UInt8(ascii: "$"))
            var divisor = 1
            while divisor * 10 <= token.count { divisor *= 10 }
            repeat {
                releaseRequest.append(UInt8(ascii: "0") + UInt8(token.count / divisor % 10))
                divisor /= 10
            } while divisor > 0
            releaseRequest.append(contentsOf: Self.lineEnd)
            releaseRequest.append(contentsOf: token)
            releaseRequest.append(contentsOf: Self.lineEnd)
        }
        acquiring = false
        sentAt = monotonicNanoseconds()
        _ = writeAll(fd, releaseRequest)
    }

    private static let releaseTail: [UInt8] = Array("\"}\n".utf8)
    private static let lineEnd: [UInt8] = [0x0D, 0x0A]
    private static let leaseKey: [UInt8] = Array(#""lease":""#.utf8)

    /// Reads what arrived; for each complete answer reports its latency and whether it
    /// completed a pair, and sends the next request.
    func readable(_ onAnswer: (_ latencyNanoseconds: UInt64, _ completedPair: Bool) -> Void) {
        let count = recv(fd, input + used, Self.inputCapacity - used, Int32(MSG_DONTWAIT))
        guard count > 0 else { return }
        used += count
        var start = 0
        while let newline = memchr(input + start, 0x0A, used - start) {
            let end = UnsafeRawPointer(input).distance(to: newline)
            let line = UnsafeBufferPointer(start: input + start, count: end - start)
            let latency = monotonicNanoseconds() - sentAt
            if acquiring {
                guard let token = extractToken(line) else { fatalError("acquire refused: \(String(decoding: line, as: UTF8.self))") }
                onAnswer(latency, false)
                sendRelease(token)
            } else {
                onAnswer(latency, true)
                sendAcquire()
            }
            start = end + 1
        }
        used -= start
        precondition(used < Self.inputCapacity, "an answer longer than \(Self.inputCapacity) bytes")
        if used > 0 && start > 0 { memmove(input, input + start, used) }
    }

    /// The lease token in an acquire answer (pointing into the answer), nil if it was refused.
    private func extractToken(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
        switch target {
        case .turnstile, .floor:
            guard let found = Self.find(Self.leaseKey, in: line) else { return nil }
            let start = found + Self.leaseKey.count
            guard let end = line[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
            return UnsafeBufferPointer(rebasing: line[start..<end])
        case .redis:
            guard line.first == UInt8(ascii: ":") else { return nil }
            var digits = UnsafeBufferPointer(rebasing: line[1...])
            if digits.last == 0x0D { digits = UnsafeBufferPointer(rebasing: digits.dropLast()) }
            return digits.count == 1 && digits[0] == UInt8(ascii: "0") ? nil : digits
        }
    }

    /// Where `key` starts in `line`: a plain scan, since the stdlib's `firstRange(of:)` allocates
    /// its searcher on every call.
    private static func find(_ key: [UInt8], in line: UnsafeBufferPointer<UInt8>) -> Int? {
        guard line.count >= key.count else { return nil }
        return (0...(line.count - key.count)).first { memcmp(line.baseAddress! + $0, key, key.count) == 0 }
    }
}

/// Redis's wire protocol, just enough to send commands.
enum RESP {
    static func command(_ parts: [String]) -> [UInt8] {
        header(parts.count) + parts.flatMap { bulk(Array($0.utf8)) }
    }

    /// An array of `count` parts: `*<count>\r\n`.
    static func header(_ count: Int) -> [UInt8] { Array("*\(count)\r\n".utf8) }

    /// A bulk string: `$<length>\r\n<bytes>\r\n`.
    static func bulk(_ bytes: [UInt8]) -> [UInt8] { Array("$\(bytes.count)\r\n".utf8) + bytes + [0x0D, 0x0A] }
}

/// Per-request latencies, kept whole (a few million samples at most) for exact percentiles.
struct LatencyRecorder {
    private var samples: [UInt32] = []

    init() { samples.reserveCapacity(1 << 22) }

    /// Records a latency (in units of 10 ns).
    mutating func record(_ nanoseconds: UInt64) {
        samples.append(UInt32(clamping: nanoseconds / 10))
    }

    /// Percentiles in whole microseconds.
    mutating func percentiles(_ points: [Double]) -> [Int] {
        guard !samples.isEmpty else { return points.map { _ in 0 } }
        samples.sort()
        return points.map { point in
            let index = min(samples.count - 1, Int((Double(samples.count) * point / 100).rounded(.down)))
            return Int(samples[index] / 100)
        }
    }
}
