/// Cuts a byte stream into lines (protocol/PROTOCOL.md): `\n`-terminated, `\r\n` accepted, lines of only
/// white space ignored, and no line longer than `lineBytesMax`.
///
/// Complete lines inside one read are handed out straight from the read buffer; only a line
/// split across reads is copied, into the framer's own buffer. A handler may stop delivery
/// part-way (its connection is closing, or has used its turn): the bytes not yet framed are
/// kept as a backlog that `resume` delivers later, before anything appended after it.
public struct LineFramer: Sendable {
    /// Longest line accepted, without its terminator (64 KiB).
    public static let lineBytesMax = 65_536

    /// What happened to the bytes appended.
    public enum Outcome: Equatable, Sendable {
        /// All lines were delivered, or the handler asked to stop (see `hasBacklog`).
        case ok
        /// A line grew past the limit: the connection is answered `line_too_long` and closed.
        case lineTooLong
    }

    private var partial: [UInt8] = []
    /// Bytes after the line where the handler stopped delivery, not yet framed.
    private var backlog: [UInt8] = []
    private let lineBytesMax: Int

    /// Creates a framer.
    /// - Parameter lineBytesMax: the longest line accepted.
    public init(lineBytesMax: Int = LineFramer.lineBytesMax) {
        self.lineBytesMax = lineBytesMax
    }

    /// Bytes of an unfinished line held back.
    public var pendingCount: Int { partial.count }

    /// Whether delivery stopped with bytes left over: call `resume` before appending more.
    public var hasBacklog: Bool { !backlog.isEmpty }

    /// Delivers the backlog left when the handler last stopped, as if it were appended now.
    public mutating func resume(onLine: (UnsafeBufferPointer<UInt8>) -> Bool) -> Outcome {
        let bytes = backlog
        backlog = []
        return bytes.withUnsafeBufferPointer { append($0, onLine: onLine) }
    }

    /// The stream ended: delivers the unfinished last line, if any, as a line of its own (a
    /// client that writes its last request without `\n` and closes is still answered).
    public mutating func finish(onLine: (UnsafeBufferPointer<UInt8>) -> Bool) {
        guard !partial.isEmpty else { return }
        let line = partial
        partial = []
        _ = line.withUnsafeBufferPointer { deliver($0, onLine) }
    }

    /// Feeds bytes and calls `onLine` for every complete line, without its terminator.
    /// - Parameter onLine: returns false to stop delivering; the rest becomes the backlog.
    public mutating func append(_ chunk: UnsafeBufferPointer<UInt8>,
                                onLine: (UnsafeBufferPointer<UInt8>) -> Bool) -> Outcome {
        var start = 0
        while start < chunk.count {
            guard let newline = chunk[start...].firstIndex(of: 0x0A) else {
                // One byte of slack: the line may still end in "\r\n".
                if partial.count + chunk.count - start > lineBytesMax + 1 { return .lineTooLong }
                partial.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[start...]))
                return .ok
            }
            let verdict: Verdict
            if partial.isEmpty {
                verdict = deliver(UnsafeBufferPointer(rebasing: chunk[start..<newline]), onLine)
            } else {
                partial.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[start..<newline]))
                let line = partial
                partial.removeAll(keepingCapacity: partial.capacity <= 4096)
                verdict = line.withUnsafeBufferPointer { deliver($0, onLine) }
            }
            switch verdict {
            case .next: start = newline + 1
            case .stop:
                backlog = Array(UnsafeBufferPointer(rebasing: chunk[(newline + 1)...]))
                return .ok
            case .tooLong: return .lineTooLong
            }
        }
        return .ok
    }

    private enum Verdict {
        case next, stop, tooLong
    }

    /// Strips one trailing `\r`, enforces the limit, skips blank lines.
    private func deliver(_ line: UnsafeBufferPointer<UInt8>, _ onLine: (UnsafeBufferPointer<UInt8>) -> Bool) -> Verdict {
        var end = line.count
        if end > 0 && line[end - 1] == 0x0D { end -= 1 }
        if end > lineBytesMax { return .tooLong }
        let content = UnsafeBufferPointer(rebasing: line[..<end])
        if content.allSatisfy(isBlank) { return .next }
        return onLine(content) ? .next : .stop
    }

    /// JSON's white space within a line: space, tab and carriage return (a line of only these,
    /// such as the `\r` left of `\r\r\n`, is blank too).
    private func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D
    }
}
