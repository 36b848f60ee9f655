import TurnstileCore

/// What the transport counts of its work with the cluster (protocol/CLUSTER.md §6): the broker
/// knows claims and their outcomes, the transport knows transactions, conflicts, round trips
/// and the other hosts' slots. `status` and `metrics` show both.
public struct ClusterTransportReport: Sendable, Equatable {
    /// This host's name in the fleet (the configured `host`, else the machine's hostname).
    public var host = ""
    /// Claim transactions sent (each carries up to 127 claims).
    public var claimTransactions: UInt64 = 0
    /// Claims that took a slot.
    public var claimsWon: UInt64 = 0
    /// Claims whose chosen slot another host took first.
    public var conflicts: UInt64 = 0
    /// Claim transactions answered, and the sum and largest of their round trips.
    public var roundTrips: UInt64 = 0
    public var roundTripNanoseconds: UInt64 = 0
    public var roundTripMaxNanoseconds: UInt64 = 0
    /// Leases kept through a loss (`on_loss = "keep"`) whose unit another host took meanwhile:
    /// they run in excess of the fleet's limit until they end.
    public var excess = 0
    /// Why this host does not join the cluster (its shared limits disagree with the fleet's).
    public var problem: String?
    /// Slots held per shared limit and host, as last polled.
    public var useByHost: [SharedLimit: [String: Int]] = [:]

    public init() {}

    /// Counts one claim transaction's round trip.
    public mutating func observeRoundTrip(nanoseconds: UInt64) {
        roundTrips &+= 1
        roundTripNanoseconds &+= nanoseconds
        roundTripMaxNanoseconds = max(roundTripMaxNanoseconds, nanoseconds)
    }
}
