import Prometheus
import TurnstileCore
import TurnstileProtocol

/// The `metrics` answer: the status as Prometheus text (tandem's set, plus per-dimension use
/// and limits, expiries and reclaims), rendered by swift-prometheus from a registry built
/// afresh for each scrape.
enum MetricsText {
    /// The state directory's health, as the metrics show it.
    struct StorageHealth {
        var failing: Bool
        var failures: UInt64
    }

    static func render(_ status: BrokerStatus, server: ServerInfo, telemetryEvictions: Telemetry.Evictions,
                       storage: StorageHealth, transport: ClusterTransportReport? = nil) -> String {
        let registry = PrometheusCollectorRegistry()
        func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "turnstile", metricName: name, unitName: "", helpText: help)
        }
        func gauge(_ name: String, _ help: String, _ value: Int, _ labels: [(String, String)] = []) {
            registry.makeGauge(descriptor: describe(name, help), labels: labels).set(Double(value))
        }
        // Durations are in seconds, Prometheus's base unit (promtool refuses `_ms` names).
        func seconds(_ name: String, _ help: String, milliseconds: Double) {
            registry.makeGauge(descriptor: describe(name, help), labels: []).set(milliseconds / 1000)
        }
        func counter(_ name: String, _ help: String, _ value: UInt64, _ labels: [(String, String)] = []) {
            registry.makeCounter(descriptor: describe(name, help), labels: labels).increment(by: Int64(clamping: value))
        }
        gauge("active_leases", "Permits held now.", status.global.inUse)
        gauge("global_limit", "The global permit limit.", status.global.limit)
        gauge("waiting", "Requests waiting for a permit.", status.global.waiting)
        for reason in BlockReason.allCases {
            gauge("queued", "Waiting requests by the reason that blocks them now.",
                  status.queuedByReason[reason] ?? 0, [("reason", reason.rawValue)])
        }
        for mode in status.modes {
            gauge("mode_in_use", "Permits held per mode.", mode.inUse, [("mode", mode.mode.rawValue)])
            if let limit = mode.limit { gauge("mode_limit", "Quota per mode.", limit, [("mode", mode.mode.rawValue)]) }
        }
        for project in status.projects {
            gauge("project_in_use", "Permits held per project.", project.inUse, [("project", project.name)])
            if let limit = project.limit { gauge("project_limit", "Cap per project.", limit, [("project", project.name)]) }
            gauge("project_paused", "1 while a project is paused.", project.paused ? 1 : 0, [("project", project.name)])
            gauge("project_failures", "Consecutive project-meta failures.", project.failures, [("project", project.name)])
        }
        for model in status.models {
            let labels = [("model", model.model.description)]
            gauge("model_in_use", "Permits held per model pool.", model.inUse, labels)
            gauge("model_limit", "Concurrency limit per model pool.", model.limit, labels)
            gauge("model_subscription_limited", "1 while a pool is flagged subscription-limited.",
                  model.limitedForMilliseconds == nil ? 0 : 1, labels)
        }
        for pool in status.pools {
            gauge("pool_in_use", "Units held per named pool.", pool.inUse, [("pool", pool.name)])
            gauge("pool_limit", "Units per named pool (configured, or ad hoc while in use).", pool.limit, [("pool", pool.name)])
            gauge("pool_waiting", "Waiters whose reason is this pool.", pool.waiting, [("pool", pool.name)])
        }
        gauge("workspaces_locked", "Workspace locks held.", status.workspaces.count)
        gauge("throttles_active", "Provider throttles in force.", status.throttles.count)
        let metrics = status.metrics
        counter("admitted_total", "Leases granted.", metrics.admittedTotal)
        counter("completed_total", "Leases ended, whatever the cause.", metrics.completedTotal)
        counter("released_total", "Leases released by their holder.", metrics.releasedTotal)
        counter("expired_total", "Leases expired without a heartbeat.", metrics.expiredTotal)
        counter("reclaimed_total", "Leases taken back after a disconnect or a process death.", metrics.reclaimedTotal)
        counter("revoked_total", "Leases revoked by an administrator.", metrics.revokedTotal)
        let ends: [(String, UInt64)] = [("released", metrics.releasedTotal), ("disconnected", metrics.disconnectedTotal),
                                        ("process_exited", metrics.processExitedTotal), ("expired", metrics.expiredTotal),
                                        ("revoked", metrics.revokedTotal)]
        for (cause, count) in ends {
            counter("lease_ends_total", "Leases ended, by cause: a finish (released) or a kind of reclaim.", count,
                    [("cause", cause)])
        }
        counter("finished_total", "Releases that said how the work finished, by outcome (exit code 0 or not).",
                metrics.finishedSuccessTotal, [("outcome", "success")])
        counter("finished_total", "Releases that said how the work finished, by outcome (exit code 0 or not).",
                metrics.finishedFailureTotal, [("outcome", "failure")])
        counter("drained_total", "Leases whose process group outlived them; counted when the group was gone.",
                metrics.drainedTotal)
        gauge("draining", "Leases ended whose process group still runs (their slot is still taken).",
              status.leases.filter { $0.draining != nil }.count)
        counter("refused_total", "Acquires refused at once.", metrics.refusedTotal)
        counter("timed_out_total", "Waits that timed out.", metrics.timedOutTotal)
        counter("dispatch_checks_total", "Admission checks made on queued waiters (one per group of alike waiters).",
                metrics.dispatchChecksTotal)
        seconds("wait_avg_seconds", "Mean wait of the last 1000 grants, in seconds (immediate grants count as 0).",
                milliseconds: Double(metrics.averageWaitMilliseconds))
        seconds("wait_p95_seconds", "95th percentile wait of the last 1000 grants, in seconds.",
                milliseconds: Double(metrics.p95WaitMilliseconds))
        let evictions = [("model", telemetryEvictions.models), ("event", telemetryEvictions.events),
                         ("session", telemetryEvictions.sessions)]
        for (kind, count) in evictions {
            counter("telemetry_evictions_total", "Telemetry evicted to stay within its [telemetry] bounds, by kind.",
                    count, [("kind", kind)])
        }
        gauge("storage_healthy", "1 while the state directory takes writes; 0 while grants are refused with reason storage.",
              storage.failing ? 0 : 1)
        counter("storage_failures_total", "Times the state directory stopped taking writes.", storage.failures)
        gauge("connections", "Open client connections.", server.connections)
        gauge("uptime_seconds", "Seconds since the daemon started.", Int(server.uptimeMilliseconds / 1000))
        if let cluster = status.cluster { renderCluster(cluster, transport: transport, into: registry) }
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
