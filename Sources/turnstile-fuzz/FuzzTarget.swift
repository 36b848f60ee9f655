#if canImport(Glibc)
import Glibc
#endif
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// libFuzzer's entry point (built with `-sanitize=fuzzer -DFUZZING`, see `make fuzz`).
@_cdecl("LLVMFuzzerTestOneInput")
public func turnstileFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTarget.run(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// What the fuzzer drives: bytes as a client would send them, through the line framer (in
/// chunks whose sizes the input chooses), then both JSON paths: the daemon's scan
/// (`JSONParser.scanObject` and the request decoder over the scanned line) must accept, refuse
/// and decode exactly as the building parser and the decoder over the built object do; and
/// for every value that parses, the writer and the parser again must give the same value
/// back. Every request that decodes is then applied to a broker (`BrokerDriver`), whose
/// invariants must hold after each one. Nothing here may crash, hang or loop, whatever the bytes.
enum FuzzTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        guard let first = input.first else { return }
        let chunk = Int(first % 61) + 1
        var framer = LineFramer()
        var driver = BrokerDriver(seed: first)
        var start = 1
        while start < input.count {
            let end = min(input.count, start + chunk)
            let outcome = framer.append(UnsafeBufferPointer(rebasing: input[start..<end])) { line in
                if let request = check(line) { driver.apply(request, line: line) }
                return true
            }
            if outcome == .lineTooLong { return }
            start = end
        }
    }

    /// Checks one line through both JSON paths.
    /// - Returns: the request it decodes to, if any.
    private static func check(_ line: UnsafeBufferPointer<UInt8>) -> Request? {
        var members: [JSONMember] = []
        let parsed = Result { () throws(JSONError) -> JSONValue in try JSONParser.parse(line) }
        let scanned = Result { () throws(JSONError) -> JSONKind in try JSONParser.scanObject(line, members: &members) }
        switch (parsed, scanned) {
        case (.failure(let built), .failure(let scan)):
            if built != scan { fatalError("the scan refused differently: \(scan) vs \(built)") }
            return nil
        case (.success(let value), .success(let kind)):
            if value.kind != kind { fatalError("the scan saw \(kind), the parser \(value)") }
            roundTrip(value)
            guard case .object(let object) = value else { return nil }
            let view = JSONObjectView(bytes: line, members: members)
            return compare(view, object)
        default:
            fatalError("one path accepted what the other refused: \(parsed) vs \(scanned)")
        }
    }

    private static func roundTrip(_ value: JSONValue) {
        var writer = JSONWriter()
        writer.value(value)
        guard let again = try? JSONParser.parse(writer.bytes) else {
            fatalError("the writer's output does not parse: \(String(decoding: writer.bytes, as: UTF8.self))")
        }
        if again != value { fatalError("round trip changed the value: \(value) → \(again)") }
    }

    /// The scanned members are the built ones, and both decode to the same request or error.
    /// - Returns: the request, if the line is one.
    private static func compare(_ view: JSONObjectView, _ object: JSONObject) -> Request? {
        if view.members.count != object.members.count { fatalError("member counts differ") }
        for (member, built) in zip(view.members, object.members) where view.value(member) != built.value {
            fatalError("member \(built.key) scanned as \(view.value(member)), built as \(built.value)")
        }
        for built in object.members where view.member(named: built.key).map(view.value) != object[built.key] {
            fatalError("looking up \(built.key) differs")
        }
        let resolve = { (name: String) in ModelKey(provider: "fuzz", model: name) }
        let fromView = Result { () throws(RequestError) -> Request in try RequestDecoder.decode(view, resolveModel: resolve) }
        let fromObject = Result { () throws(RequestError) -> Request in try RequestDecoder.decode(object, resolveModel: resolve) }
        if fromView != fromObject { fatalError("the decoders differ: \(fromView) vs \(fromObject)") }
        return try? fromView.get()
    }
}

#if FUZZING
/// libFuzzer's driver, for a program that keeps its own `main` (SwiftPM renames an
/// executable's entry point, so libFuzzer's `main` cannot be the program's).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// With libFuzzer: its driver runs the target.
@main
enum FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, turnstileFuzzOneInput))
    }
}
#else
/// Without libFuzzer: replays the files (or directories of files) named on the command line
/// through the same target, so `make test` runs the saved corpus as a regression test.
@main
enum CorpusReplay {
    static func main() {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            for file in files(at: path) {
                guard let bytes = read(file) else { continue }
                bytes.withUnsafeBufferPointer { FuzzTarget.run($0) }
                count += 1
            }
        }
        print("replayed \(count) inputs")
    }

    private static func files(at path: String) -> [String] {
        guard let directory = opendir(path) else { return [path] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if !name.hasPrefix(".") { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    private static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
    }
}
#endif
