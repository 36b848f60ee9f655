#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TurnstileProtocol
import TurnstileSession

/// The journal's open segment (`journal-N.ndjson`): the changes since the last snapshot,
/// buffered through a loop turn and written with one `write` before the turn's answers leave.
///
/// Each record is one line, `<CRC-32C in 8 hex digits> <json>\n`, so a record torn by a crash or
/// a full disk is recognised and dropped on replay instead of being read as part of the next
/// one. A batch that cannot be written (disk full, I/O error, file size limit) is kept, never
/// dropped: the segment is truncated back to the end of its last complete batch and the whole
/// batch is written again by `commit` until it succeeds (PROTOCOL.md, "State and storage").
final class Journal {
    /// The segment being appended to.
    private(set) var segment: UInt64 = 0
    private var descriptor: Int32 = -1
    /// Framed records not yet known to be in the file.
    /// The batch: records written in place, each behind a checksum prefix filled in after it.
    private var pending = JSONWriter(capacity: 4096)
    /// The segment's length after its last complete batch: a failed write is cut back to it.
    private var committedLength: off_t = 0
    /// Whether the file may hold part of a failed batch past `committedLength`.
    private var mayHoldTornTail = false
    /// Bytes written to the segment since it was opened.
    private(set) var segmentBytes = 0

    /// Whether records wait to be written.
    var hasPending: Bool { !pending.isEmpty }

    /// Opens `path` as the new segment `number` (after the previous one was committed).
    /// - Throws: a description if the file cannot be opened.
    func open(_ path: String, number: UInt64) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StartupError(description: "cannot open the journal \(path): \(String(cString: strerror(errno)))")
        }
        close()
        var info = stat()
        committedLength = fstat(fd, &info) == 0 ? info.st_size : 0
        descriptor = fd
        segment = number
        segmentBytes = 0
        mayHoldTornTail = false
    }

    /// Takes a loop turn's records, framing each line: eight hex digits of the CRC-32C of its
    /// JSON, a space, the JSON.
    func adopt(_ batch: inout JournalBatch) {
        guard !batch.isEmpty else { return }
        batch.withLines { bytes, starts in
            for (index, start) in starts.enumerated() {
                let end = index + 1 < starts.count ? starts[index + 1] : bytes.count
                // The record's JSON: after the prefix, without its newline.
                let json = UnsafeRawBufferPointer(rebasing: bytes[(start + JournalBatch.prefixLength)..<(end - 1)])
                let crc = CRC32C.checksum(json)
                for digit in 0..<8 { bytes[start + digit] = Self.hexDigits[Int((crc >> UInt32(28 - 4 * digit)) & 0xF)] }
            }
            pending.lines(UnsafeRawBufferPointer(bytes))
        }
        batch.removeAll()
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Writes the batch. On failure the batch stays for the next call and the file is cut
    /// back to its last complete batch, so a torn write never leaves half a record in front
    /// of the next one.
    /// - Returns: nil when every record is in the file, else why not.
    func commit() -> String? {
        guard !pending.isEmpty else { return nil }
        guard descriptor >= 0 else { return "the journal is not open" }
        if mayHoldTornTail {
            guard ftruncate(descriptor, committedLength) == 0 else {
                return "cannot cut the journal back to its last complete record: \(String(cString: strerror(errno)))"
            }
            mayHoldTornTail = false
        }
        let (offset, failure) = pending.withBytes { writeAll(descriptor, $0) }
        if let failure {
            if offset > 0 {
                mayHoldTornTail = true
                if ftruncate(descriptor, committedLength) == 0 { mayHoldTornTail = false }
            }
            return "cannot write the journal: \(failure)"
        }
        committedLength += off_t(offset)
        segmentBytes += offset
        pending.removeAll(keepingCapacityUpTo: 1 << 20)
        return nil
    }

    /// Forgets records that a snapshot now holds (written when the journal could not be).
    func discardPending() {
        pending.removeAll(keepingCapacityUpTo: 1 << 20)
    }

    /// Closes the segment file.
    func close() {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
    }
}

/// Reads journal segments back at start: one record per line, each checked against its CRC.
enum JournalReader {
    /// A line that could not be used, for the log.
    struct BadRecord {
        var line: Int
        var why: String
    }

    /// The records of one segment's bytes, in order, and the lines dropped.
    static func records(in bytes: [UInt8]) -> (records: [JournalRecord], bad: [BadRecord]) {
        var records: [JournalRecord] = []
        var bad: [BadRecord] = []
        let decoder = JSONDecoder()
        var lineNumber = 0
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            lineNumber += 1
            if line.isEmpty { continue }
            if index == lines.count - 1 {
                bad.append(BadRecord(line: lineNumber, why: "torn: the last line has no end"))
                continue
            }
            switch body(of: line) {
            case .failure(let why): bad.append(BadRecord(line: lineNumber, why: why.description))
            case .success(let json):
                do {
                    records.append(try decoder.decode(JournalRecord.self, from: Data(json)))
                } catch {
                    bad.append(BadRecord(line: lineNumber, why: "not a journal record: \(describe(error))"))
                }
            }
        }
        return (records, bad)
    }

    /// A line's JSON after its checksum is verified. A line starting with `{` was written
    /// before records carried checksums and is taken as is.
    private static func body(of line: ArraySlice<UInt8>) -> Result<ArraySlice<UInt8>, Failure> {
        if line.first == UInt8(ascii: "{") { return .success(line) }
        guard line.count > 9, line[line.startIndex + 8] == UInt8(ascii: " "),
              let expected = UInt32(String(decoding: line.prefix(8), as: UTF8.self), radix: 16) else {
            return .failure(Failure("no checksum"))
        }
        let json = line.dropFirst(9)
        guard CRC32C.checksum(json) == expected else { return .failure(Failure("checksum mismatch")) }
        return .success(json)
    }

    /// Why a line was dropped.
    struct Failure: Error, CustomStringConvertible, ExpressibleByStringLiteral {
        let description: String
        init(_ description: String) { self.description = description }
        init(stringLiteral value: String) { description = value }
    }
}

/// A decoding error in a few words: which field, and what was wrong with it.
func describe(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    let path: [any CodingKey]
    let what: String
    switch error {
    case .keyNotFound(let key, let context): path = context.codingPath + [key]; what = "missing"
    case .valueNotFound(_, let context): path = context.codingPath; what = "null"
    case .typeMismatch(_, let context): path = context.codingPath; what = context.debugDescription
    case .dataCorrupted(let context): path = context.codingPath; what = context.debugDescription
    @unknown default: return "\(error)"
    }
    let field = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    return field.isEmpty ? what : "\(field): \(what)"
}
