#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// `record-models`: one client recording a completion for a model never seen before (and a
/// session never seen before) every millisecond, the load that once grew the daemon's telemetry
/// without bound. It pipelines the records at their pace and reads every answer; it exits
/// non-zero if one was refused.
struct RecordModels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record-models", abstract: "A record with a new model name every millisecond.")

    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "Seconds of load.") var seconds = 10.0
    @Option(name: .customLong("per-second"), help: "Records per second.") var perSecond = 1000

    func run() throws {
        guard let fd = connectUnix(socket) else { throw BenchError("cannot connect to \(socket)") }
        defer { close(fd) }
        let start = monotonicNanoseconds()
        let end = start + UInt64(seconds * 1e9)
        var sent = 0, answered = 0, refused = 0
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while monotonicNanoseconds() < end || answered < sent {
            let now = monotonicNanoseconds()
            let due = now < end ? Int((now - start) / 1_000_000) * perSecond / 1000 : sent
            var batch: [UInt8] = []
            while sent < due {
                sent += 1
                batch += Array(#"{"op":"record","model":"soak/model-\#(sent)","session_id":"session-\#(sent)","latency_ms":1,"success":true,"tokens":{"input":1}}"#.utf8)
                batch.append(0x0A)
            }
            if !batch.isEmpty, !writeAll(fd, batch) { throw BenchError("the daemon closed the connection after \(sent) records") }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 1) > 0 else { continue }
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { throw BenchError("the daemon closed the connection after \(answered) answers") }
            pending += chunk[0..<count]
            while let newline = pending.firstIndex(of: 0x0A) {
                if !pending[..<newline].starts(with: Array(#"{"ok":true"#.utf8)) { refused += 1 }
                answered += 1
                pending.removeSubrange(...newline)
            }
        }
        print("record-models: \(sent) records of \(sent) new models in \(fixed(seconds, 0)) s, \(refused) refused")
        if refused > 0 { throw ExitCode(1) }
    }
}
