import Foundation
import Testing
import TurnstileCore
@testable import TurnstileProtocol
@testable import TurnstileSession

/// The daemon decodes requests from a scanned line (`JSONObjectView`); the same decoder also
/// reads built objects. Both must give the same request, or the same error, for every line.
@Suite("RequestDecoder: scanned and built lines agree")
struct RequestDecoderTests {
    /// Decodes `text` both ways; nil where the line is not a JSON object.
    static func decodeBothWays(_ text: String) -> (scanned: Result<Request, RequestError>, built: Result<Request, RequestError>)? {
        let bytes = Array(text.utf8)
        guard case .object(let object)? = try? JSONParser.parse(bytes) else { return nil }
        let resolve = { (name: String) in name == "opus" ? ModelKey(provider: "anthropic", model: "opus") : nil }
        let scanned = bytes.withUnsafeBufferPointer { buffer -> Result<Request, RequestError> in
            var members: [JSONMember] = []
            _ = try? JSONParser.scanObject(buffer, members: &members)
            let view = JSONObjectView(bytes: buffer, members: members)
            return Result { () throws(RequestError) -> Request in try RequestDecoder.decode(view, resolveModel: resolve) }
        }
        let built = Result { () throws(RequestError) -> Request in try RequestDecoder.decode(object, resolveModel: resolve) }
        return (scanned, built)
    }

    @Test(arguments: [
        #"{"op":"acquire"}"#,
        #"{"op":"acquire","project":"p","mode":"issue","model":"a/b","fallback":["c/d","e"],"ttl_ms":1000,"wait_ms":1e3,"priority":-5,"detach":true,"pid":42,"holder":"h","notify":true,"workspace":"/w","providers":"x, y","tenant":"t"}"#,
        #"{"op":"acquire","model":"opus"}"#,
        #"{"op":"acquire","model":"unknown"}"#,
        #"{"op":"acquire","mode":null,"project":null}"#,
        #"{"op":"acquire","ttl_ms":"1000"}"#,
        #"{"op":"acquire","ttl_ms":1.5}"#,
        #"{"op":"acquire","wait_ms":-1}"#,
        #"{"op":"acquire","detach":"yes"}"#,
        #"{"op":"acquire","holder":"a\u0000b"}"#,
        #"{"op":"acquire","holder":"caf\u00e9"}"#,
        #"{"op":"release","lease":"0123456789abcdef0123456789ABCDEF"}"#,
        #"{"op":"release","lease":"0123456789abcdef0123456789abcde\u0066"}"#,
        #"{"op":"release","lease":"short"}"#,
        #"{"op":"release","lease":42}"#,
        #"{"op":"release"}"#,
        #"{"\u006fp":"hello","client":"c"}"#,
        #"{"op":"hello","op":"status"}"#,
        #"{"op":null}"#,
        #"{"op":7}"#,
        #"{}"#,
        #"{"op":"nope"}"#,
        #"{"op":"heartbeat","leases":["0123456789abcdef0123456789abcdef","bad",3]}"#,
        #"{"op":"heartbeat","leases":"x"}"#,
        #"{"op":"cancel","target":{"a":1}}"#,
        #"{"op":"cancel","target":"x"}"#,
        #"{"op":"throttle","provider":"p","retry_after":"Wed, 21 Oct 2015 07:28:00 GMT"}"#,
        #"{"op":"throttle","provider":"p","retry_after":120}"#,
        #"{"op":"record","model":"a/b","latency_ms":5,"success":true,"tokens":{"total":3,"input":"x"},"cost_usd":1e999}"#,
        #"{"op":"record","model":"a/b","latency_ms":5,"success":false,"tokens":{"total":3},"cost_usd":0.5,"status":429}"#,
        #"{"op":"revoke","fence":3}"#,
        #"{"op":"unpark","lease":"0123456789abcdef0123456789abcdef","wait_ms":18446744073709551616}"#,
    ])
    func bothWaysAgree(line: String) throws {
        let both = try #require(Self.decodeBothWays(line))
        #expect(both.scanned == both.built, "\(line)")
    }

    /// Every request in the protocol's vectors.
    @Test func everyVectorRequestDecodesTheSameBothWays() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocol/vectors")
        var checked = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".ndjson") {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("> ") {
                guard let both = Self.decodeBothWays(String(line.dropFirst(2))) else { continue }
                #expect(both.scanned == both.built, "\(file): \(line)")
                checked += 1
            }
        }
        #expect(checked >= 40, "the vectors hold requests (\(checked) checked)")
    }
}
