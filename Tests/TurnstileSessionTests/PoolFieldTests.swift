import Testing
import TurnstileCore
@testable import TurnstileProtocol
@testable import TurnstileSession

/// `pools` and `pool_limits` on `acquire` (protocol/PROTOCOL.md §8.2): names as `providers` takes
/// them, limits as an object whose keys are among the names; anything else is a `bad_request`
/// naming the field, the same whether the line was scanned or built.
@Suite("Acquire's pools and pool_limits")
struct PoolFieldTests {
    private func decode(_ line: String) throws -> Result<Request, RequestError> {
        let both = try #require(RequestDecoderTests.decodeBothWays(line))
        #expect(both.scanned == both.built, "\(line)")
        return both.scanned
    }

    private func admission(_ line: String) throws -> AdmissionRequest? {
        if case .success(.acquire(let request, _)) = try decode(line) { return request.admission }
        return nil
    }

    @Test func namesComeAsAnArrayOrACommaSeparatedStringWithoutRepeats() throws {
        #expect(try admission(#"{"op":"acquire","pools":["gpu","db","gpu"]}"#)?.pools == ["gpu", "db"])
        #expect(try admission(#"{"op":"acquire","pools":" gpu, db ,"}"#)?.pools == ["gpu", "db"])
        #expect(try admission(#"{"op":"acquire","pools":null}"#)?.pools == [])
        let adHoc = try admission(#"{"op":"acquire","pools":["build"],"pool_limits":{"build":3}}"#)
        #expect(adHoc?.pools == ["build"] && adHoc?.poolLimits == ["build": 3])
    }

    @Test(arguments: [
        (#"{"op":"acquire","pools":["gpu",3]}"#, "pools"),
        (#"{"op":"acquire","pools":[""]}"#, "pools"),
        (#"{"op":"acquire","pools":["a\u0007b"]}"#, "pools"),
        (#"{"op":"acquire","pools":{"gpu":1}}"#, "pools"),
        (#"{"op":"acquire","pools":"p1,p2,p3,p4,p5,p6,p7,p8,p9,p10,p11,p12,p13,p14,p15,p16,p17"}"#, "pools"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":3}"#, "pool_limits"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":{"other":3}}"#, "pool_limits"),
        (#"{"op":"acquire","pool_limits":{"build":3}}"#, "pool_limits"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":{"build":0}}"#, "pool_limits"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":{"build":1000001}}"#, "pool_limits"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":{"build":2.5}}"#, "pool_limits"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":{"build":"3"}}"#, "pool_limits"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":{"build":-1}}"#, "pool_limits"),
        (#"{"op":"acquire","pools":["build"],"pool_limits":{"build":18446744073709551616}}"#, "pool_limits"),
    ])
    func badPoolFieldsAreBadRequestsNamingTheField(line: String, field: String) throws {
        guard case .failure(let error) = try decode(line) else {
            Issue.record("accepted: \(line)")
            return
        }
        #expect(error.code == .badRequest && error.field == field, "\(line): \(error)")
    }

    @Test func sixteenPoolsAndTheLargestLimitAreAccepted() throws {
        let names = (1...16).map { "p\($0)" }
        let line = #"{"op":"acquire","pools":"\#(names.joined(separator: ","))","pool_limits":{"p1":1000000}}"#
        let request = try admission(line)
        #expect(request?.pools == names && request?.poolLimits == ["p1": 1_000_000])
    }
}
