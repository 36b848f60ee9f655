import Testing
@testable import TurnstileCore

/// Wall times read back from the state directory never trap, however far off they are.
@Suite("Restoring wall times")
struct RestoredWallTimeTests {
    @Test func throttleAndFlagEndsAtTheEdgesOfInt64AreRestoredWithoutATrap() {
        var h = Harness()
        let far = WallTime(unixMilliseconds: Int64.max)
        let snapshot = BrokerSnapshot(
            fenceHighWater: 0, leases: [], breaker: [:],
            throttles: [.init(tenant: "local", provider: "p", until: far)],
            telemetry: nil)
        h.broker.decideRestore(snapshot, now: h.now, wall: WallTime(unixMilliseconds: Int64.min + 1))
        #expect(h.broker.throttles.active(now: h.now).count == 1)
        #expect(Broker.millisecondsLeft(until: WallTime(unixMilliseconds: Int64.min), from: h.wall) == 0)
        #expect(Broker.millisecondsLeft(until: far, from: WallTime(unixMilliseconds: -1)) == UInt64.max)
    }
}
