#if canImport(Glibc)
import Glibc
#endif

/// What a user would otherwise build a permit broker from: a Redis counter with a token table,
/// acquired and released by Lua scripts so each is one atomic round trip (the fair reference
/// for Turnstile's acquire and release).
struct RedisSemaphore {
    let acquireSHA: String
    let releaseSHA: String

    /// KEYS: counter, token sequence, token table. ARGV: limit. Returns a token, or 0 if full.
    static let acquireScript = """
        local n = redis.call('INCR', KEYS[1])
        if n > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return 0 end
        local token = redis.call('INCR', KEYS[2])
        redis.call('HSET', KEYS[3], token, 1)
        return token
        """

    /// KEYS: counter, token table. ARGV: token. Returns 1 if it was held.
    static let releaseScript = """
        if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then redis.call('DECR', KEYS[1]) return 1 end
        return 0
        """

    /// Loads both scripts (SCRIPT LOAD) and resets the keys.
    /// - Parameter limit: unused by the scripts (each acquire passes its limit); kept so the
    ///   call reads the same in every workload.
    static func load(socket path: String, limit: Int = 1_000_000) throws -> RedisSemaphore {
        guard let fd = connectUnix(path) else { throw BenchError("cannot connect to redis at \(path)") }
        defer { close(fd) }
        func ask(_ parts: [String]) throws -> String {
            guard writeAll(fd, RESP.command(parts)) else { throw BenchError("redis write failed") }
            var reply: [UInt8] = []
            var byte: UInt8 = 0
            var newlines = 0
            // Bulk strings (the SHA) take two lines; simple replies one.
            while recv(fd, &byte, 1, 0) == 1 {
                reply.append(byte)
                if byte == 0x0A {
                    newlines += 1
                    if reply.first != UInt8(ascii: "$") || newlines == 2 { break }
                }
            }
            let text = String(decoding: reply, as: UTF8.self)
            if text.hasPrefix("-") { throw BenchError("redis: \(text)") }
            return text.split(separator: "\r\n").last.map(String.init) ?? ""
        }
        _ = try ask(["DEL", "sem", "next", "held"])
        return RedisSemaphore(acquireSHA: try ask(["SCRIPT", "LOAD", acquireScript]),
                              releaseSHA: try ask(["SCRIPT", "LOAD", releaseScript]))
    }
}

/// A benchmark setup failure.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
