import TurnstileCore
import TurnstileProtocol

/// What the daemon adds to the broker's status: about itself.
public struct ServerInfo: Sendable {
    public var version: String
    public var pid: Int32
    public var uptimeMilliseconds: UInt64
    public var connections: Int
    public var watchers: Int

    public init(version: String, pid: Int32, uptimeMilliseconds: UInt64, connections: Int, watchers: Int) {
        self.version = version
        self.pid = pid
        self.uptimeMilliseconds = uptimeMilliseconds
        self.connections = connections
        self.watchers = watchers
    }
}

/// Writes the `status` answer (protocol/PROTOCOL.md): limits and use per dimension keyed by name, locks,
/// throttles, leases (never their tokens), waiters with their current reason, and metrics.
public enum StatusEncoding {
    public static func write(_ w: inout JSONWriter, id: ArraySlice<UInt8>?, _ status: BrokerStatus, server: ServerInfo, transport: ClusterTransportReport? = nil) {
        Answers.beginSuccess(&w, id: id)
        w.key("server")
        w.beginObject()
        w.key("version"); w.string(server.version)
        w.key("pid"); w.int(server.pid)
        w.key("uptime_ms"); w.int(server.uptimeMilliseconds)
        w.key("connections"); w.int(server.connections)
        w.key("watchers"); w.int(server.watchers)
        w.endObject()
        w.key("fairness"); w.string(status.fairness.rawValue)
        w.key("global")
        w.beginObject()
        w.key("limit"); w.int(status.global.limit)
        w.key("in_use"); w.int(status.global.inUse)
        w.key("waiting"); w.int(status.global.waiting)
        w.endObject()
        w.key("modes")
        w.beginObject()
        for mode in status.modes {
            w.dynamicKey(mode.mode.rawValue)
            w.beginObject()
            w.key("limit"); optionalInt(&w, mode.limit)
            w.key("in_use"); w.int(mode.inUse)
            if let share = mode.share { w.key("share"); w.int(share) }
            w.endObject()
        }
        w.endObject()
        writeProjects(&w, status.projects)
        writeModels(&w, status.models)
        writeLocksAndThrottles(&w, status)
        writeLeases(&w, status.leases)
        writeWaiting(&w, status.waiting)
        writeMetrics(&w, status)
        if let cluster = status.cluster { writeCluster(&w, cluster, transport: transport) }
        Answers.close(&w)
    }

    /// `cluster` (protocol/CLUSTER.md §6): whether it can be reached, how long the units held
    /// are surely this host's, the claims in flight, the models found full across it.
    /// With the transport's report: the host name it uses, the slots each host holds per shared
    /// model (`use`), its transactions, conflicts and round trips.
    private static func writeCluster(_ w: inout JSONWriter, _ cluster: BrokerStatus.ClusterUse, transport: ClusterTransportReport?) {
        w.key("cluster")
        w.beginObject()
        w.key("host"); w.string(transport?.host ?? cluster.host)
        w.key("endpoints")
        w.beginArray()
        for endpoint in cluster.endpoints { w.string(endpoint) }
        w.endArray()
        w.key("state"); w.string(cluster.state.rawValue)
        w.key("reachable"); w.bool(cluster.state == .available)
        w.key("on_loss"); w.string(cluster.onLoss.rawValue)
        if let since = cluster.sinceMilliseconds { w.key("since_ms"); w.int(since) }
        if let validFor = cluster.validForMilliseconds { w.key("valid_until_ms"); w.int(validFor) }
        w.key("claiming"); w.int(cluster.claiming)
        w.key("outcome_unknown"); w.int(cluster.outcomeUnknown)
        w.key("exhausted")
        w.beginArray()
        for limit in cluster.exhausted { w.string(limit.description) }
        w.endArray()
        let metrics = cluster.metrics
        w.key("claims_total"); w.int(metrics.claimsTotal)
        w.key("claim_failures_total"); w.int(metrics.claimFailuresTotal)
        w.key("unknown_outcomes_total"); w.int(metrics.unknownOutcomesTotal)
        w.key("losses_total"); w.int(metrics.lossesTotal)
        w.key("revoked_total"); w.int(metrics.revokedTotal)
        if let transport { writeClusterTransport(&w, transport) }
        w.endObject()
    }

    private static func writeClusterTransport(_ w: inout JSONWriter, _ transport: ClusterTransportReport) {
        if let problem = transport.problem { w.key("problem"); w.string(problem) }
        w.key("use")
        w.beginObject()
        for limit in transport.useByHost.keys.sorted() {
            w.dynamicKey(limit.description)
            w.beginObject()
            let hosts = transport.useByHost[limit]!
            for host in hosts.keys.sorted() {
                w.dynamicKey(host)
                w.int(hosts[host]!)
            }
            w.endObject()
        }
        w.endObject()
        w.key("excess"); w.int(transport.excess)
        w.key("transactions_total"); w.int(transport.claimTransactions)
        w.key("claims_won_total"); w.int(transport.claimsWon)
        w.key("conflicts_total"); w.int(transport.conflicts)
        w.key("round_trip_avg_us"); w.int(transport.roundTrips == 0 ? 0 : transport.roundTripNanoseconds / transport.roundTrips / 1000)
        w.key("round_trip_max_us"); w.int(transport.roundTripMaxNanoseconds / 1000)
    }

    private static func writeProjects(_ w: inout JSONWriter, _ projects: [BrokerStatus.ProjectUse]) {
        w.key("projects")
        w.beginObject()
        for project in projects {
            w.dynamicKey(project.name)
            w.beginObject()
            w.key("limit"); optionalInt(&w, project.limit)
            w.key("in_use"); w.int(project.inUse)
            w.key("mention_limit"); optionalInt(&w, project.mentionLimit)
            w.key("mention_in_use"); w.int(project.mentionInUse)
            w.key("paused"); w.bool(project.paused)
            w.key("failures"); w.int(project.failures)
            w.endObject()
        }
        w.endObject()
        w.key("paused")
        w.beginArray()
        for project in projects where project.paused { w.string(project.name) }
        w.endArray()
    }

    private static func writeModels(_ w: inout JSONWriter, _ models: [BrokerStatus.ModelUse]) {
        w.key("models")
        w.beginObject()
        for model in models {
            w.dynamicKey(model.model.description)
            w.beginObject()
            w.key("limit"); w.int(model.limit)
            w.key("in_use"); w.int(model.inUse)
            w.key("tier"); w.string(model.tier.rawValue)
            w.key("tools"); w.bool(model.tools)
            w.key("subscription_limited"); w.bool(model.limitedForMilliseconds != nil)
            if let remaining = model.limitedForMilliseconds { w.key("limited_for_ms"); w.int(remaining) }
            w.endObject()
        }
        w.endObject()
    }

    private static func writeLocksAndThrottles(_ w: inout JSONWriter, _ status: BrokerStatus) {
        w.key("pools")
        w.beginObject()
        for pool in status.pools {
            w.dynamicKey(pool.name)
            w.beginObject()
            w.key("limit"); w.int(pool.limit)
            w.key("in_use"); w.int(pool.inUse)
            w.key("waiting"); w.int(pool.waiting)
            w.key("ad_hoc"); w.bool(pool.adHoc)
            w.endObject()
        }
        w.endObject()
        w.key("workspaces")
        w.beginArray()
        for lock in status.workspaces {
            w.beginObject()
            w.key("path"); w.string(lock.path)
            w.key("fence"); w.int(lock.fence)
            w.key("parked"); w.bool(lock.parked)
            w.endObject()
        }
        w.endArray()
        w.key("throttles")
        w.beginArray()
        for throttle in status.throttles {
            w.beginObject()
            w.key("provider"); w.string(throttle.provider)
            w.key("tenant"); w.string(throttle.tenant)
            w.key("retry_after_ms"); w.int(throttle.remainingMilliseconds)
            w.endObject()
        }
        w.endArray()
    }

    private static func writeLeases(_ w: inout JSONWriter, _ leases: [BrokerStatus.LeaseInfo]) {
        w.key("leases")
        w.beginArray()
        for lease in leases {
            w.beginObject()
            w.key("fence"); w.int(lease.fence)
            w.key("project"); w.string(lease.project)
            w.key("mode"); w.string(lease.mode.rawValue)
            w.key("model"); w.string(lease.model?.description)
            w.key("route"); w.string(lease.route?.rawValue)
            w.key("workspace"); w.string(lease.workspace)
            w.key("tenant"); w.string(lease.tenant)
            w.key("holder"); w.string(lease.holder)
            w.key("pid"); optionalInt(&w, lease.pid.map(Int.init))
            w.key("age_ms"); w.int(lease.ageMilliseconds)
            w.key("since_heartbeat_ms"); w.int(lease.sinceHeartbeatMilliseconds)
            w.key("expires_in_ms"); w.int(lease.expiresInMilliseconds)
            w.key("bound"); w.bool(lease.bound)
            w.key("parked"); w.bool(lease.parked)
            if let pgid = lease.pgid { w.key("pgid"); w.int(pgid) }
            if let clusterFence = lease.clusterFence { w.key("cluster_fence"); w.int(clusterFence) }
            if !lease.pools.isEmpty {
                w.key("pools")
                w.beginArray()
                for pool in lease.pools { w.string(pool) }
                w.endArray()
            }
            if let cause = lease.draining {
                w.key("draining"); w.string(cause.rawValue)
                w.key("draining_ms"); w.int(lease.drainingMilliseconds ?? 0)
            }
            w.endObject()
        }
        w.endArray()
    }

    private static func writeWaiting(_ w: inout JSONWriter, _ waiting: [BrokerStatus.WaiterInfo]) {
        w.key("waiting")
        w.beginArray()
        for waiter in waiting {
            w.beginObject()
            w.key("project"); w.string(waiter.project)
            w.key("mode"); w.string(waiter.mode.rawValue)
            w.key("model"); w.string(waiter.model?.description)
            w.key("workspace"); w.string(waiter.workspace)
            w.key("holder"); w.string(waiter.holder)
            w.key("priority"); w.int(waiter.priority)
            w.key("reason"); w.string(waiter.reason.rawValue)
            w.key("waited_ms"); w.int(waiter.waitedMilliseconds)
            w.key("position"); w.int(waiter.position)
            w.key("unpark"); w.bool(waiter.unpark)
            w.endObject()
        }
        w.endArray()
    }

    private static func writeMetrics(_ w: inout JSONWriter, _ status: BrokerStatus) {
        let metrics = status.metrics
        w.key("metrics")
        w.beginObject()
        w.key("admitted_total"); w.int(metrics.admittedTotal)
        w.key("completed_total"); w.int(metrics.completedTotal)
        w.key("released_total"); w.int(metrics.releasedTotal)
        w.key("expired_total"); w.int(metrics.expiredTotal)
        w.key("reclaimed_total"); w.int(metrics.reclaimedTotal)
        w.key("revoked_total"); w.int(metrics.revokedTotal)
        w.key("disconnected_total"); w.int(metrics.disconnectedTotal)
        w.key("process_exited_total"); w.int(metrics.processExitedTotal)
        w.key("drained_total"); w.int(metrics.drainedTotal)
        w.key("finished_success_total"); w.int(metrics.finishedSuccessTotal)
        w.key("finished_failure_total"); w.int(metrics.finishedFailureTotal)
        w.key("refused_total"); w.int(metrics.refusedTotal)
        w.key("timed_out_total"); w.int(metrics.timedOutTotal)
        w.key("avg_wait_ms"); w.int(metrics.averageWaitMilliseconds)
        w.key("p95_wait_ms"); w.int(metrics.p95WaitMilliseconds)
        w.key("queued_by_reason")
        w.beginObject()
        for reason in BlockReason.allCases {
            if let count = status.queuedByReason[reason] {
                w.dynamicKey(reason.rawValue)
                w.int(count)
            }
        }
        w.endObject()
        w.endObject()
    }

    private static func optionalInt(_ w: inout JSONWriter, _ value: Int?) {
        if let value { w.int(value) } else { w.null() }
    }
}
