import Testing
@testable import TurnstileProtocol

/// A framer and everything it has delivered, for feeding chunk by chunk.
private struct Framing {
    var framer: LineFramer
    var lines: [[UInt8]] = []
    /// How many lines the handler accepts before it answers false.
    var acceptedLinesMax = Int.max

    init(lineBytesMax: Int = LineFramer.lineBytesMax) {
        framer = LineFramer(lineBytesMax: lineBytesMax)
    }

    /// Appends one chunk.
    mutating func feed(_ chunk: [UInt8]) -> LineFramer.Outcome {
        let limit = acceptedLinesMax
        var delivered = lines
        let outcome = chunk.withUnsafeBufferPointer { buffer in
            framer.append(buffer) { line in
                delivered.append(Array(line))
                return delivered.count < limit
            }
        }
        lines = delivered
        return outcome
    }

    /// Delivers the backlog left by a stop, accepting `acceptedLinesMax` more lines.
    mutating func resume(acceptingMore more: Int) -> LineFramer.Outcome {
        var delivered = lines
        let limit = lines.count + more
        let outcome = framer.resume { line in
            delivered.append(Array(line))
            return delivered.count < limit
        }
        lines = delivered
        return outcome
    }

    /// Appends each chunk in turn, stopping at the first `.lineTooLong`.
    mutating func feed(chunks: [[UInt8]]) -> LineFramer.Outcome {
        for chunk in chunks where feed(chunk) == .lineTooLong { return .lineTooLong }
        return .ok
    }

    var texts: [String] { lines.map { String(decoding: $0, as: UTF8.self) } }
}

/// `count` bytes of `x`.
private func filler(_ count: Int) -> [UInt8] { Array(repeating: UInt8(ascii: "x"), count: count) }

/// The stream cut into pieces at `cuts` (sorted offsets).
private func pieces(_ stream: [UInt8], at cuts: [Int]) -> [[UInt8]] {
    var result: [[UInt8]] = []
    var start = 0
    for cut in cuts + [stream.count] {
        result.append(Array(stream[start..<cut]))
        start = cut
    }
    return result
}

/// An independent statement of the framing rules over a whole stream: lines end at `\n`, one
/// trailing `\r` is dropped, lines of only spaces, tabs and carriage returns are skipped, a line
/// over `max` bytes (or an unfinished one that can no longer fit, even as `…\r`) is fatal.
private func reference(_ stream: [UInt8], max: Int) -> (lines: [[UInt8]], tooLong: Bool) {
    var lines: [[UInt8]] = []
    var segments = stream.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
    let unfinished = segments.removeLast()
    for var segment in segments {
        if segment.last == 0x0D { segment.removeLast() }
        if segment.count > max { return (lines, true) }
        if segment.allSatisfy({ [0x20, 0x09, 0x0D].contains($0) }) { continue }
        lines.append(segment)
    }
    return (lines, unfinished.count > max + 1)
}

@Suite("LineFramer")
struct LineFramerTests {
    @Test func aSingleLine() {
        var framing = Framing()
        #expect(framing.feed(utf8("{\"op\":\"status\"}\n")) == .ok)
        #expect(framing.texts == ["{\"op\":\"status\"}"])
        #expect(framing.framer.pendingCount == 0)
    }

    @Test func severalLinesInOneChunk() {
        var framing = Framing()
        #expect(framing.feed(utf8("a\nbb\nccc\n")) == .ok)
        #expect(framing.texts == ["a", "bb", "ccc"])
    }

    @Test func anUnfinishedLineWaitsForItsNewline() {
        var framing = Framing()
        #expect(framing.feed(utf8("abc")) == .ok)
        #expect(framing.lines.isEmpty)
        #expect(framing.framer.pendingCount == 3)
        #expect(framing.feed(utf8("de")) == .ok)
        #expect(framing.framer.pendingCount == 5)
        #expect(framing.feed(utf8("f\ng")) == .ok)
        #expect(framing.texts == ["abcdef"])
        #expect(framing.framer.pendingCount == 1)
        #expect(framing.feed(utf8("\n")) == .ok)
        #expect(framing.texts == ["abcdef", "g"])
        #expect(framing.framer.pendingCount == 0)
    }

    @Test func emptyChunksChangeNothing() {
        var framing = Framing()
        #expect(framing.feed([]) == .ok)
        #expect(framing.feed(utf8("ab")) == .ok)
        #expect(framing.feed([]) == .ok)
        #expect(framing.framer.pendingCount == 2)
        #expect(framing.lines.isEmpty)
    }

    static let stream = utf8("{\"op\":\"a\"}\n\r\n  \n{\"op\":\"b\"}\r\nx\ry\n\t\n\r\r\n{\"id\":1}\n\u{E9}\u{1F600}\r\nlast\n")
    static let streamLines = ["{\"op\":\"a\"}", "{\"op\":\"b\"}", "x\ry", "{\"id\":1}", "\u{E9}\u{1F600}", "last"]

    @Test func theStreamFedWholeGivesItsLines() {
        var framing = Framing()
        #expect(framing.feed(Self.stream) == .ok)
        #expect(framing.texts == Self.streamLines)
    }

    @Test func aLineSplitAcrossTwoReadsAtEveryPoint() {
        for cut in 0...Self.stream.count {
            var framing = Framing()
            #expect(framing.feed(chunks: pieces(Self.stream, at: [cut])) == .ok)
            #expect(framing.texts == Self.streamLines, "cut at \(cut)")
            #expect(framing.framer.pendingCount == 0, "cut at \(cut)")
        }
    }

    @Test func aLineSplitAcrossThreeReadsAtEveryPairOfPoints() {
        for first in 0...Self.stream.count {
            for second in first...Self.stream.count {
                var framing = Framing()
                #expect(framing.feed(chunks: pieces(Self.stream, at: [first, second])) == .ok)
                #expect(framing.texts == Self.streamLines, "cuts at \(first), \(second)")
            }
        }
    }

    @Test func oneByteAtATime() {
        var framing = Framing()
        #expect(framing.feed(chunks: Self.stream.map { [$0] }) == .ok)
        #expect(framing.texts == Self.streamLines)
    }

    @Test(arguments: [
        ("abc\r\n", ["abc"]),
        ("abc\r\r\n", ["abc\r"]),
        ("\rabc\n", ["\rabc"]),
        ("a\rb\n", ["a\rb"]),
        ("a\r\rb\r\n", ["a\r\rb"]),
        ("a\r\nb\nc\r\n", ["a", "b", "c"]),
    ])
    func carriageReturns(text: String, lines: [String]) {
        var framing = Framing()
        #expect(framing.feed(utf8(text)) == .ok)
        #expect(framing.texts == lines)
    }

    @Test func aTrailingCarriageReturnWaitsForItsNewline() {
        var framing = Framing()
        #expect(framing.feed(utf8("abc\r")) == .ok)
        #expect(framing.lines.isEmpty)
        #expect(framing.framer.pendingCount == 4)
        #expect(framing.feed(utf8("\n")) == .ok)
        #expect(framing.texts == ["abc"])
    }

    @Test(arguments: ["\n", "\r\n", " \n", "\t\t\r\n", "   \t  \n", " \t \r\n", "\r\r\n", " \r \n", "\r\t\r\r\n"])
    func blankAndWhitespaceOnlyLinesAreSkipped(blank: String) {
        var framing = Framing()
        #expect(framing.feed(utf8("a\n" + blank + "b\n" + blank + blank)) == .ok)
        #expect(framing.texts == ["a", "b"])
        #expect(framing.framer.pendingCount == 0)
    }

    @Test func linesWithContentAmongWhitespaceAreKept() {
        var framing = Framing()
        #expect(framing.feed(utf8("  x  \n\t{}\t\r\n")) == .ok)
        #expect(framing.texts == ["  x  ", "\t{}\t"])
    }

    @Test func bytesAreDeliveredAsTheyCame() {
        let line: [UInt8] = [0x00, 0xFF, 0xC0, 0x80, 0x7F, 0x01]
        var framing = Framing()
        #expect(framing.feed(line + [0x0A]) == .ok)
        #expect(framing.lines == [line])
    }

    // MARK: The limit

    @Test func theLimitIs64KiB() {
        #expect(LineFramer.lineBytesMax == 65_536)
    }

    @Test(arguments: [[0x0A], [0x0D, 0x0A]] as [[UInt8]])
    func exactly65536BytesAreAcceptedInOneChunk(terminator: [UInt8]) {
        var framing = Framing()
        #expect(framing.feed(utf8("a\n") + filler(65_536) + terminator + utf8("b\n")) == .ok)
        #expect(framing.lines.map(\.count) == [1, 65_536, 1])
        #expect(framing.lines[1] == filler(65_536))
    }

    @Test(arguments: [
        [filler(65_536), [0x0A]],
        [filler(65_536), [0x0D, 0x0A]],
        [filler(65_536), [0x0D], [0x0A]],
        [filler(65_536) + [0x0D], [0x0A]],
        [filler(30_000), filler(30_000), filler(5_536) + [0x0D], [0x0A]],
        [filler(1), filler(65_535) + [0x0D, 0x0A]],
    ] as [[[UInt8]]])
    func exactly65536BytesAreAcceptedAcrossChunks(chunks: [[UInt8]]) {
        var framing = Framing()
        #expect(framing.feed(chunks: chunks) == .ok)
        #expect(framing.lines == [filler(65_536)])
        #expect(framing.framer.pendingCount == 0)
    }

    @Test(arguments: [[0x0A], [0x0D, 0x0A]] as [[UInt8]])
    func bytes65537AreRejectedInOneChunk(terminator: [UInt8]) {
        var framing = Framing()
        #expect(framing.feed(utf8("ok\n") + filler(65_537) + terminator + utf8("never\n")) == .lineTooLong)
        #expect(framing.texts == ["ok"])
    }

    @Test func bytes65537AreRejectedWhenTheNewlineComesLater() {
        var framing = Framing()
        #expect(framing.feed(filler(65_537)) == .ok)
        #expect(framing.framer.pendingCount == 65_537)
        #expect(framing.feed(utf8("\n")) == .lineTooLong)
        #expect(framing.lines.isEmpty)
    }

    @Test func bytes65537AreRejectedWhenCRLFComesLater() {
        var framing = Framing()
        #expect(framing.feed(filler(65_537)) == .ok)
        #expect(framing.feed(utf8("\r\n")) == .lineTooLong)
        #expect(framing.lines.isEmpty)
    }

    @Test func aLongLineIsRejectedAsSoonAsItCannotFit() {
        var framing = Framing()
        for _ in 0..<16 {
            #expect(framing.feed(filler(4_096)) == .ok)
        }
        #expect(framing.framer.pendingCount == 65_536)
        #expect(framing.feed([0x0D]) == .ok, "65,536 and a \\r may still be a whole line")
        #expect(framing.feed(filler(1)) == .lineTooLong)
        #expect(framing.lines.isEmpty)
    }

    @Test func aLongLineAccumulatedAcrossChunksIsRejectedInOneBigStep() {
        var framing = Framing()
        #expect(framing.feed(filler(40_000)) == .ok)
        #expect(framing.feed(filler(40_000)) == .lineTooLong)
    }

    @Test func aLongLineWhoseLastPieceHasTheNewlineIsRejected() {
        var framing = Framing()
        #expect(framing.feed(utf8("a\n") + filler(40_000)) == .ok)
        #expect(framing.feed(filler(25_537) + utf8("\nb\n")) == .lineTooLong)
        #expect(framing.texts == ["a"])
    }

    @Test func aCustomLimit() {
        var framing = Framing(lineBytesMax: 4)
        #expect(framing.feed(utf8("abcd\nabc\r\nab\n")) == .ok)
        #expect(framing.texts == ["abcd", "abc", "ab"])
        var tooLong = Framing(lineBytesMax: 4)
        #expect(tooLong.feed(utf8("abcd\nabcde\n")) == .lineTooLong)
        #expect(tooLong.texts == ["abcd"])
    }

    // MARK: Stopping

    @Test func theHandlerCanStopDelivery() {
        var framing = Framing()
        framing.acceptedLinesMax = 1
        #expect(framing.feed(utf8("a\nb\nc\n")) == .ok)
        #expect(framing.texts == ["a"])
    }

    @Test func theHandlerCanStopOnALineFromSeveralChunks() {
        var framing = Framing()
        framing.acceptedLinesMax = 2
        #expect(framing.feed(utf8("a\nb")) == .ok)
        #expect(framing.feed(utf8("b\nc\nd\n")) == .ok)
        #expect(framing.texts == ["a", "bb"])
    }

    @Test func stoppingKeepsTheRestForResumeEvenATooLongLine() {
        var framing = Framing()
        framing.acceptedLinesMax = 1
        #expect(framing.feed(utf8("a\n") + filler(70_000) + utf8("\n")) == .ok)
        #expect(framing.texts == ["a"])
        #expect(framing.framer.hasBacklog)
        #expect(framing.resume(acceptingMore: 10) == .lineTooLong)
        #expect(framing.texts == ["a"])
    }

    @Test func resumeDeliversTheBacklogInTurnsThenTheNextChunkContinuesIt() {
        var framing = Framing()
        framing.acceptedLinesMax = 1
        #expect(framing.feed(utf8("a\nb\nc\nd")) == .ok)
        #expect(framing.texts == ["a"])
        #expect(framing.resume(acceptingMore: 1) == .ok)
        #expect(framing.texts == ["a", "b"])
        #expect(framing.framer.hasBacklog)
        #expect(framing.resume(acceptingMore: 5) == .ok)
        #expect(!framing.framer.hasBacklog)
        #expect(framing.framer.pendingCount == 1)
        framing.acceptedLinesMax = .max
        #expect(framing.feed(utf8("d\n")) == .ok)
        #expect(framing.texts == ["a", "b", "c", "dd"])
    }

    // MARK: Against a reference

    /// Random streams delivered in turns of a few lines (the daemon's fair turns), each chunk's
    /// backlog drained before the next chunk, against `reference`.
    @Test func randomStreamsDeliveredInTurnsMatchTheReference() {
        let alphabet = utf8("ab \t\r\n\n{")
        for seed in UInt64(0)..<3_000 {
            var random = TestRandom(seed: seed)
            let max = 1 + random.below(6)
            let turn = 1 + random.below(3)
            let stream = (0..<random.below(40)).map { _ in random.pick(alphabet) }
            let cuts = (0..<random.below(6)).map { _ in random.below(stream.count + 1) }.sorted()
            var framing = Framing(lineBytesMax: max)
            var outcome = LineFramer.Outcome.ok
            chunks: for chunk in pieces(stream, at: cuts) {
                framing.acceptedLinesMax = framing.lines.count + turn
                outcome = framing.feed(chunk)
                while outcome == .ok && framing.framer.hasBacklog { outcome = framing.resume(acceptingMore: turn) }
                if outcome == .lineTooLong { break chunks }
            }
            let expected = reference(stream, max: max)
            #expect(outcome == (expected.tooLong ? .lineTooLong : .ok), "seed \(seed): \(describeBytes(stream)) max \(max)")
            #expect(framing.lines == expected.lines, "seed \(seed): \(describeBytes(stream)) max \(max) turn \(turn) cuts \(cuts)")
        }
    }

    /// Random streams over a small alphabet, cut at random, against `reference`.
    @Test func randomStreamsMatchTheReference() {
        let alphabet = utf8("ab \t\r\n\n{")
        for seed in UInt64(0)..<3_000 {
            var random = TestRandom(seed: seed)
            let max = 1 + random.below(6)
            let stream = (0..<random.below(40)).map { _ in random.pick(alphabet) }
            let cuts = (0..<random.below(6)).map { _ in random.below(stream.count + 1) }.sorted()
            var framing = Framing(lineBytesMax: max)
            let outcome = framing.feed(chunks: pieces(stream, at: cuts))
            let expected = reference(stream, max: max)
            #expect(outcome == (expected.tooLong ? .lineTooLong : .ok), "seed \(seed): \(describeBytes(stream)) max \(max)")
            #expect(framing.lines == expected.lines, "seed \(seed): \(describeBytes(stream)) max \(max) cuts \(cuts)")
            if !expected.tooLong {
                let unfinished = stream.count - (stream.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0)
                #expect(framing.framer.pendingCount == unfinished, "seed \(seed)")
            }
        }
    }
}
