import Testing
import TurnstileProtocol
@testable import TurnstileSession

/// The multi-lease heartbeat's bound is what one request line can hold.
@Suite("Heartbeat bound")
struct HeartbeatBoundTests {
    @Test func theHeartbeatBoundIsWhatOneLineHolds() {
        let token = "\"0123456789abcdef0123456789abcdef\""
        func line(_ count: Int) -> String {
            "{\"op\":\"heartbeat\",\"leases\":[" + Array(repeating: token, count: count).joined(separator: ",") + "]}"
        }
        #expect(line(RequestDecoder.heartbeatLeasesMax).utf8.count <= LineFramer.lineBytesMax)
        #expect(line(RequestDecoder.heartbeatLeasesMax + 1).utf8.count > LineFramer.lineBytesMax)
        #expect(RequestDecoder.heartbeatLeasesMax == 1871)
    }
}
