#if canImport(Glibc)
import Glibc
#endif

/// One benchmark connection looping acquire → release, in the target's own protocol.
struct PairClient {
    let fd: Int32
    let target: Target
    private var buffer: [UInt8] = []
    private var acquiring = true
    private var sentAt: UInt64 = 0
    private var token: [UInt8] = []
    private var scratch = [UInt8](repeating: 0, count: 65_536)
    private let scripts: RedisSemaphore?

    init(fd: Int32, target: Target, scripts: RedisSemaphore?) {
        self.fd = fd
        self.target = target
        self.scripts = scripts
    }

    /// Sends the first acquire.
    mutating func start() { sendAcquire() }

    private mutating func sendAcquire() {
        acquiring = true
        sentAt = monotonicNanoseconds()
        switch target {
        case .turnstile, .floor: _ = writeAll(fd, Array(#"{"op":"acquire"}"#.utf8) + [0x0A])
        case .redis: _ = writeAll(fd, RESP.command(["EVALSHA", scripts!.acquireSHA, "3", "sem", "next", "held", "1000000"]))
        }
    }

    private mutating func sendRelease() {
        acquiring = false
        sentAt = monotonicNanoseconds()
        switch target {
        case .turnstile, .floor:
            _ = writeAll(fd, Array(#"{"op":"release","lease":""#.utf8) + token + Array("\"}\n".utf8))
        case .redis:
            _ = writeAll(fd, RESP.command(["EVALSHA", scripts!.releaseSHA, "2", "sem", "held", String(decoding: token, as: UTF8.self)]))
        }
    }

    /// Reads what arrived; for each complete answer reports its latency and whether it
    /// completed a pair, and sends the next request.
    mutating func readable(_ onAnswer: (_ latencyNanoseconds: UInt64, _ completedPair: Bool) -> Void) {
        let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        guard count > 0 else { return }
        buffer.append(contentsOf: scratch[0..<count])
        while let newline = buffer.firstIndex(of: 0x0A) {
            let line = Array(buffer[..<newline])
            buffer.removeFirst(newline + 1)
            let latency = monotonicNanoseconds() - sentAt
            if acquiring {
                guard let extracted = extractToken(line) else { fatalError("acquire refused: \(String(decoding: line, as: UTF8.self))") }
                token = extracted
                onAnswer(latency, false)
                sendRelease()
            } else {
                onAnswer(latency, true)
                sendAcquire()
            }
        }
    }

    private func extractToken(_ line: [UInt8]) -> [UInt8]? {
        switch target {
        case .turnstile, .floor:
            let key = Array(#""lease":""#.utf8)
            guard let start = line.firstRange(of: key)?.upperBound else { return nil }
            guard let end = line[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
            return Array(line[start..<end])
        case .redis:
            guard line.first == UInt8(ascii: ":") else { return nil }
            let digits = line.dropFirst().prefix { $0 != 0x0D }
            return digits == [0x30] ? nil : Array(digits)
        }
    }
}

/// Redis's wire protocol, just enough to send commands.
enum RESP {
    static func command(_ parts: [String]) -> [UInt8] {
        var out = Array("*\(parts.count)\r\n".utf8)
        for part in parts {
            out += Array("$\(part.utf8.count)\r\n".utf8) + Array(part.utf8) + [0x0D, 0x0A]
        }
        return out
    }
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
