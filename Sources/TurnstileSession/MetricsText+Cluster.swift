import Prometheus
import TurnstileCore

extension MetricsText {
    /// The cluster's metrics (protocol/CLUSTER.md §6): whether it is reachable, claims and their
    /// outcomes, conflicts, round trips, losses and revocations, and the units each host holds.
    static func renderCluster(_ cluster: BrokerStatus.ClusterUse, transport: ClusterTransportReport?,
                              into registry: PrometheusCollectorRegistry) {
        func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "turnstile_cluster", metricName: name, unitName: "", helpText: help)
        }
        func gauge(_ name: String, _ help: String, _ value: Int, _ labels: [(String, String)] = []) {
            registry.makeGauge(descriptor: describe(name, help), labels: labels).set(Double(value))
        }
        func counter(_ name: String, _ help: String, _ value: UInt64) {
            registry.makeCounter(descriptor: describe(name, help), labels: []).increment(by: Int64(clamping: value))
        }
        gauge("reachable", "1 while the host lease is held and shared capacity can be claimed.", cluster.state == .available ? 1 : 0)
        gauge("claiming", "Claims of shared units whose outcome is not known yet.", cluster.claiming)
        let metrics = cluster.metrics
        counter("claims_total", "Claims of shared units made.", metrics.claimsTotal)
        counter("claim_failures_total", "Claims that found no free unit across the cluster.", metrics.claimFailuresTotal)
        counter("unknown_outcomes_total", "Claims whose transaction's outcome was unknown (read back).", metrics.unknownOutcomesTotal)
        counter("losses_total", "Times the cluster was lost (no renewal of the host lease in time).", metrics.lossesTotal)
        counter("revoked_total", "Leases revoked because the cluster was lost (on_loss = revoke).", metrics.revokedTotal)
        guard let transport else { return }
        gauge("excess", "Leases kept through a loss (on_loss = keep) whose unit another host took meanwhile.", transport.excess)
        counter("transactions_total", "Claim transactions sent (each carries up to 127 claims).", transport.claimTransactions)
        counter("conflicts_total", "Claims whose chosen slot another host took first.", transport.conflicts)
        counter("claims_won_total", "Claims that took a unit.", transport.claimsWon)
        registry.makeGauge(descriptor: describe("round_trip_seconds_avg", "Mean round trip of claim transactions."), labels: [])
            .set(transport.roundTrips == 0 ? 0 : Double(transport.roundTripNanoseconds) / Double(transport.roundTrips) / 1e9)
        registry.makeGauge(descriptor: describe("round_trip_seconds_max", "Longest round trip of a claim transaction."), labels: [])
            .set(Double(transport.roundTripMaxNanoseconds) / 1e9)
        for limit in transport.useByHost.keys.sorted() {
            for (host, count) in transport.useByHost[limit]!.sorted(by: { $0.key < $1.key }) {
                gauge("slots_held", "Shared units held, per shared limit (kind and name) and host, as last polled.", count,
                      [("kind", limit.kind), ("name", limit.name), ("host", host)])
            }
        }
    }
}
