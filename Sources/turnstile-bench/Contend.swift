#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// `contend`: N connections over a limit L; each acquires (waiting), holds H µs, releases, again.
/// Reports grants per connection and their Jain fairness index, the wait percentiles, and the
/// most permits ever held at once as seen by the clients (never more than L, or the server
/// over-granted). Servers that cannot wait (the floor, Redis) are retried every millisecond,
/// which is what their users would do.
struct Contend: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fairness and waits under contention.")

    @Option(help: "The server's socket.") var socket: String
    @Option(help: "turnstile, floor or redis.") var target: Target = .turnstile
    @Option(help: "Connections.") var connections = 64
    @Option(help: "The server's permit limit (configure the server with it).") var limit = 8
    @Option(name: .customLong("hold-us"), help: "Microseconds each grant is held.") var holdMicroseconds = 1000
    @Option(help: "Measured seconds.") var seconds = 5.0
    @Flag(help: "Print one JSON line.") var json = false

    func run() throws {
        let scripts = target == .redis ? try RedisSemaphore.load(socket: socket, limit: limit) : nil
        var clients = (0..<connections).map { _ -> ContendClient in
            guard let fd = connectUnix(socket) else { fatalError("cannot connect to \(socket)") }
            return ContendClient(fd: fd, target: target, scripts: scripts, limit: limit)
        }
        var poller = SocketPoller(clients.map(\.fd))
        var held = 0
        var heldMax = 0
        var waits = LatencyRecorder()
        let start = monotonicNanoseconds()
        let end = start + UInt64(seconds * 1e9)
        for index in clients.indices { clients[index].acquire() }
        while monotonicNanoseconds() < end {
            let now = monotonicNanoseconds()
            var nextWake = end
            for index in clients.indices {
                if let due = clients[index].dueAt, due <= now {
                    clients[index].act(now: now, held: &held)
                }
                if let due = clients[index].dueAt { nextWake = min(nextWake, due) }
            }
            let timeout = Int32(min(100, max(0, (Int64(nextWake) - Int64(monotonicNanoseconds())) / 1_000_000)))
            poller.forEachReady(timeoutMilliseconds: timeout) { index in
                clients[index].readable(now: monotonicNanoseconds(), hold: UInt64(holdMicroseconds) * 1000, held: &held,
                                        waits: &waits)
                heldMax = max(heldMax, held)
            }
        }
        let grants = clients.map(\.grants)
        let total = grants.reduce(0, +)
        let squares = grants.reduce(0.0) { $0 + Double($1) * Double($1) }
        let jain = squares > 0 ? Double(total) * Double(total) / (Double(grants.count) * squares) : 0
        let p = waits.percentiles([50, 99])
        if json {
            print(#"{"workload":"contend","target":"\#(target.rawValue)","connections":\#(connections),"limit":\#(limit),"hold_us":\#(holdMicroseconds),"grants":\#(total),"jain":\#(fixed(jain, 4)),"wait_p50_us":\#(p[0]),"wait_p99_us":\#(p[1]),"held_max":\#(heldMax)}"#)
        } else {
            print("contend \(target.rawValue) c=\(connections) L=\(limit) hold=\(holdMicroseconds)µs: \(total) grants, Jain \(fixed(jain, 4)), "
                  + "wait p50 \(p[0])µs p99 \(p[1])µs, most held at once \(heldMax) (min/max per connection \(grants.min() ?? 0)/\(grants.max() ?? 0))")
        }
        for client in clients { close(client.fd) }
    }
}

/// One contending connection.
struct ContendClient {
    let fd: Int32
    let target: Target
    let scripts: RedisSemaphore?
    let limit: Int
    private(set) var grants = 0
    /// When the next action is due: a release after the hold, or a retry after a refusal.
    private(set) var dueAt: UInt64?
    private var token: [UInt8] = []
    private var askedAt: UInt64 = 0
    private var waitingSince: UInt64 = 0
    private var holding = false
    private var buffer: [UInt8] = []
    private var scratch = [UInt8](repeating: 0, count: 4096)

    init(fd: Int32, target: Target, scripts: RedisSemaphore?, limit: Int) {
        self.fd = fd
        self.target = target
        self.scripts = scripts
        self.limit = limit
    }

    mutating func acquire() {
        askedAt = monotonicNanoseconds()
        if waitingSince == 0 { waitingSince = askedAt }
        dueAt = nil
        switch target {
        case .turnstile: _ = writeAll(fd, Array(#"{"op":"acquire","wait_ms":60000}"#.utf8) + [0x0A])
        case .floor: _ = writeAll(fd, Array(#"{"op":"acquire"}"#.utf8) + [0x0A])
        case .redis: _ = writeAll(fd, RESP.command(["EVALSHA", scripts!.acquireSHA, "3", "sem", "next", "held", "\(limit)"]))
        }
    }

    /// A due action: release after the hold, or retry after a refusal.
    mutating func act(now: UInt64, held: inout Int) {
        dueAt = nil
        if holding {
            holding = false
            held -= 1
            switch target {
            case .turnstile, .floor:
                _ = writeAll(fd, Array(#"{"op":"release","lease":""#.utf8) + token + Array("\"}\n".utf8))
            case .redis:
                _ = writeAll(fd, RESP.command(["EVALSHA", scripts!.releaseSHA, "2", "sem", "held", String(decoding: token, as: UTF8.self)]))
            }
        } else {
            acquire()
        }
    }

    mutating func readable(now: UInt64, hold: UInt64, held: inout Int, waits: inout LatencyRecorder) {
        let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        guard count > 0 else { return }
        buffer.append(contentsOf: scratch[0..<count])
        while let newline = buffer.firstIndex(of: 0x0A) {
            let line = Array(buffer[..<newline])
            buffer.removeFirst(newline + 1)
            if holding || dueAt != nil { continue }
            if askedAt == 0 {
                // A release's answer: ask again at once.
                acquire()
                continue
            }
            if let granted = extractToken(line) {
                token = granted
                grants += 1
                held += 1
                holding = true
                waits.record(now - waitingSince)
                waitingSince = 0
                askedAt = 0
                dueAt = now + hold
            } else {
                dueAt = now + 1_000_000
            }
        }
    }

    private func extractToken(_ line: [UInt8]) -> [UInt8]? {
        switch target {
        case .turnstile, .floor:
            let key = Array(#""lease":""#.utf8)
            guard let start = line.firstRange(of: key)?.upperBound,
                  let end = line[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
            return Array(line[start..<end])
        case .redis:
            guard line.first == UInt8(ascii: ":") else { return nil }
            let digits = line.dropFirst().prefix { $0 != 0x0D }
            return digits == [0x30] ? nil : Array(digits)
        }
    }
}
