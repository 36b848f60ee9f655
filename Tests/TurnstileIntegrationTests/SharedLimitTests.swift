import Foundation
import Synchronization
import Testing
import TurnstileClient
import TurnstileProtocol

/// Model limits shared across hosts through a real 3-member etcd (protocol/CLUSTER.md): two
/// daemons on one machine stand for two hosts. The fleet fault test (Tests/cluster) checks the
/// same promises under faults, from the holders' own records.
@Suite("Shared limits through etcd", .serialized, .enabled(if: EtcdFleet.available, EtcdFleet.missing), .timeLimit(.minutes(2)))
struct SharedLimitTests {
    static let body = "[limits]\nglobal = 10\n\n[[models]]\nname = \"fake/opus\"\nconcurrency_limit = 2\n"

    static func acquire(_ client: TurnstileClient, wait: Int64 = 0, model: String? = "fake/opus",
                        detach: Bool = false, mode: String = "issue") throws -> Answer {
        var fields: [(String, JSONValue)] = [("mode", .string(mode)), ("project", .string("p")), ("wait_ms", .integer(wait))]
        if let model { fields.append(("model", .string(model))) }
        if detach { fields.append(("detach", .bool(true))) }
        return try client.ask("acquire", fields)
    }

    @Test func twoHostsShareOneModelLimitAndAReleaseOnOneGrantsAWaiterOnTheOther() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body)
        let two = try fleet.startDaemon(host: "h2", body: Self.body)
        let holderOne = try one.client(), holderTwo = try two.client()
        let first = try #require(try Self.acquire(holderOne).grant)
        let second = try #require(try Self.acquire(holderTwo).grant)
        let fences = [first.clusterFence, second.clusterFence].compactMap { $0 }
        #expect(fences.count == 2 && fences[0] < fences[1], "cluster fences rise across hosts: \(fences)")
        #expect(first.validUntilMilliseconds.map { $0 > 0 && $0 <= 2000 } == true, "valid_until_ms under on_loss = revoke")

        let third = try Self.acquire(try one.client())
        #expect(third.error == "unavailable" && third.string("reason") == "model", "the fleet's limit is 2: \(third.object)")
        #expect(third.message?.contains("across the cluster") == true)

        let waiter = try two.client()
        let waiting = try waiter.send("acquire", [("mode", .string("issue")), ("project", .string("p")),
                                                  ("model", .string("fake/opus")), ("wait_ms", .integer(10_000))])
        #expect(try holderOne.ask("release", [("lease", .string(first.lease))]).ok)
        let granted = try #require(try waiter.answer(to: waiting, timeoutMilliseconds: 10_000).grant,
                                   "the unit given back on h1 goes to h2's waiter")
        #expect((granted.clusterFence ?? 0) > (second.clusterFence ?? .max))

        let status = try two.client().ask("status")
        let cluster = try #require(status["cluster"]?.objectValue)
        #expect(cluster["state"]?.stringValue == "available" && cluster["host"]?.stringValue == "h2")
        var table = ""
        let seen = try Self.eventuallyTrue {
            table = try CLIRunTests.finished(two, ["status"]).output
            return table.contains("CLUSTER   h2 · available · on_loss revoke") && table.contains("fake/opus: h2 2")
        }
        #expect(seen, "the status table shows the cluster and each host's use: \(table)")
        let beat = try holderTwo.ask("heartbeat", [("lease", .string(second.lease))])
        #expect(beat.ok && (beat.int("valid_until_ms") ?? 0) > 0, "heartbeat answers carry valid_until_ms: \(beat.object)")
        let local = try Self.acquire(try one.client(), model: nil)
        #expect(local.ok && local.int("cluster_fence") == nil, "a lease on local limits only is not claimed")
    }

    /// Two clients on h1 and one on h2 loop acquire / hold 10 ms / release on a fleet limit of
    /// one. Without tickets h1's own waiter takes every unit h1 gives back before h2 even
    /// hears it is free (measured: h2 got 4 grants of 190); with them the unit goes round.
    @Test func freedUnitsGoRoundTheWaitingHostsInsteadOfStayingWhereTheyWereFreed() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let body = Self.body.replacingOccurrences(of: "concurrency_limit = 2", with: "concurrency_limit = 1")
        let one = try fleet.startDaemon(host: "h1", body: body)
        let two = try fleet.startDaemon(host: "h2", body: body)
        let daemons = [one, one, two]
        let tally = Tally()
        // Threads of their own: concurrentPerform would run no more workers than cores at once.
        let finished = DispatchSemaphore(value: 0)
        for worker in 0..<3 {
            Thread.detachNewThread {
                defer { finished.signal() }
                Self.loop(worker, on: daemons[worker], tally: tally)
            }
        }
        for _ in 0..<3 { finished.wait() }
        let counts = tally.grants.withLock { $0 }, hostOne = counts[0] + counts[1], hostTwo = counts[2]
        #expect(hostOne + hostTwo >= 10, "the unit kept moving: \(counts)")
        #expect(hostTwo * 4 >= hostOne + hostTwo, "h2's one waiter got at least a quarter of the grants: \(counts)")
        #expect(hostOne * 4 >= hostOne + hostTwo, "and h1 at least a quarter: \(counts)")
        let waits = tally.longestWait.withLock { $0 }
        #expect(waits.allSatisfy { $0 < 2_000 }, "nobody waited long: \(waits)")
    }

    /// What the workers of the test above counted.
    final class Tally: Sendable {
        let grants = Mutex([0, 0, 0])
        let longestWait = Mutex([Int64](repeating: 0, count: 3))
    }

    /// One worker of the test above: 4 s of acquire / hold 10 ms / release.
    static func loop(_ worker: Int, on daemon: Daemon, tally: Tally) {
        guard let client = try? daemon.client() else { return }
        let end = SocketStream.monotonicMilliseconds() + 4_000
        while SocketStream.monotonicMilliseconds() < end {
            let asked = SocketStream.monotonicMilliseconds()
            guard let grant = (try? Self.acquire(client, wait: 5_000))?.grant else { continue }
            let waited = SocketStream.monotonicMilliseconds() - asked
            tally.longestWait.withLock { $0[worker] = max($0[worker], waited) }
            tally.grants.withLock { $0[worker] += 1 }
            usleep(10_000)
            _ = try? client.ask("release", [("lease", .string(grant.lease))])
        }
    }

    /// Found by the fleet fault test: a host whose very first claim of a model finds it full
    /// must still hear of its units coming free.
    @Test func aHostWhoseFirstClaimFindsTheModelFullIsGrantedOnceAUnitIsFreed() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body)
        let two = try fleet.startDaemon(host: "h2", body: Self.body)
        let holder = try one.client()
        let first = try #require(try Self.acquire(holder).grant), second = try #require(try Self.acquire(holder).grant)
        let seen = try Self.eventuallyTrue {
            (try two.client().ask("status")["cluster"]?.objectValue?["use"]?.objectValue?["fake/opus"]?.objectValue?["h1"])?
                .numberValue?.int64 == 2
        }
        #expect(seen, "h2's poll shows h1's two units")
        let waiter = try two.client()
        let waiting = try waiter.send("acquire", [("mode", .string("issue")), ("project", .string("p")),
                                                  ("model", .string("fake/opus")), ("wait_ms", .integer(10_000))])
        let full = try Self.eventuallyTrue {
            (try two.client().ask("status")["cluster"]?.objectValue?["exhausted"]?.arrayValue?.count) == 1
        }
        #expect(full, "h2's first claim found the model full")
        #expect(try holder.ask("release", [("lease", .string(first.lease))]).ok)
        #expect(try waiter.answer(to: waiting, timeoutMilliseconds: 10_000).grant != nil, "h2 heard of the freed unit")
        withExtendedLifetime(second) {}
    }

    @Test func aHostWhoseSharedLimitDisagreesRefusesToStartAndAReloadCannotChangeIt() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body)
        let other = Self.body.replacingOccurrences(of: "concurrency_limit = 2", with: "concurrency_limit = 5")
        let disagreeing = fleet.startRefusal(host: "h2", body: other) ?? "a daemon whose shared limit disagrees started"
        #expect(disagreeing.contains("the fleet's limit of shared model fake/opus is 2"), "\(disagreeing)")
        #expect(disagreeing.contains("this host's config says 5"), "\(disagreeing)")
        // A host that gives the model no explicit limit counts its tier's default: 3 for a premium model.
        let tierDefault = Self.body.replacingOccurrences(of: "concurrency_limit = 2\n", with: "tier = \"premium\"\n")
        let tiered = fleet.startRefusal(host: "h3", body: tierDefault) ?? "a daemon whose tier default differs from the fleet's limit started"
        #expect(tiered.contains("this host's config gives it 3 (its tier's default"), "\(tiered)")
        try one.writeConfig(fleet.config(host: "h1", body: other))
        let reload = try one.client().ask("reload")
        #expect(reload.ok == false && reload.message?.contains("would change from 2 to 5") == true, "\(reload.object)")
        #expect(try Self.acquire(try one.client()).ok, "the running limit stays")
    }

    @Test func aThrottleOrASubscriptionLimitSeenOnOneHostHoldsEveryHostUntilLifted() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let shared = "\"models\", \"throttles\", \"subscription_limits\""
        let one = try fleet.startDaemon(host: "h1", body: Self.body, shared: shared)
        let two = try fleet.startDaemon(host: "h2", body: Self.body, shared: shared)
        let watcher = try two.client()
        #expect(try watcher.ask("watch").ok)

        #expect(try one.client().ask("throttle", [("provider", .string("fake")), ("retry_after_ms", .integer(60_000))]).ok)
        let throttled = try #require(try watcher.waitForEvent("throttled"), "h2 applies h1's throttle")
        #expect(throttled["provider"]?.stringValue == "fake" && (throttled["retry_after_ms"]?.numberValue?.int64 ?? 0) > 50_000)
        let held = try Self.acquire(try two.client())
        #expect(held.error == "unavailable" && held.string("reason") == "rate_limit", "\(held.object)")
        #expect(try one.client().ask("throttle", [("provider", .string("fake")), ("clear", .bool(true))]).ok)
        #expect(try watcher.waitForEvent("throttle_cleared") != nil, "lifted on h1, lifted on h2")
        #expect(try Self.acquire(try two.client()).ok)

        let record: [(String, JSONValue)] = [("model", .string("fake/opus")), ("latency_ms", .integer(5)), ("success", .bool(false)),
                                             ("error", .string("weekly session limit reached"))]
        #expect(try one.client().ask("record", record)["subscription_limited"]?.boolValue == true)
        var flagged = false
        let deadline = SocketStream.monotonicMilliseconds() + 10_000
        while !flagged && SocketStream.monotonicMilliseconds() < deadline {
            let models = try two.client().ask("status")["models"]?.objectValue
            flagged = models?["fake/opus"]?.objectValue?["subscription_limited"]?.boolValue == true
            if !flagged { usleep(20_000) }
        }
        #expect(flagged, "h2 counts the model flagged on h1 as full")
        #expect(try one.client().ask("unflag", [("model", .string("fake/opus"))]).ok)
        #expect(try watcher.waitForEvent("unflagged") != nil, "unflagged on h1, unflagged on h2")
    }

    @Test func losingQuorumRevokesSharedLeasesAndRefusesWithReasonClusterUntilItIsBack() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let daemon = try fleet.startDaemon(host: "h1", body: Self.body)
        let watcher = try daemon.client()
        #expect(try watcher.ask("watch").ok)
        let holder = try daemon.client()
        let grant = try #require(try Self.acquire(holder).grant)
        let validFor = try #require(grant.validUntilMilliseconds)
        let granted = SocketStream.monotonicMilliseconds()

        try fleet.pause(1)
        try fleet.pause(2)
        let lost = try #require(try watcher.waitForEvent("cluster_lost"))
        #expect((lost["deadline_ms"]?.numberValue?.int64 ?? 0) > 0, "lost before the safe deadline: \(lost)")
        let revoked = try #require(try holder.event(within: 5_000))
        #expect(revoked["event"]?.stringValue == "revoked" && revoked["lease"]?.stringValue == grant.lease)
        // The holder learns it no later than the validity its last answer gave (renewals may
        // have moved the deadline on since, never back).
        #expect(SocketStream.monotonicMilliseconds() - granted < Int64(validFor) + 2000)

        let refused = try Self.acquire(try daemon.client())
        #expect(refused.error == "unavailable" && refused.string("reason") == "cluster", "\(refused.object)")
        #expect(try Self.acquire(try daemon.client(), model: nil).ok, "local-only grants go on")

        try fleet.resume(1)
        try fleet.resume(2)
        #expect(try watcher.waitForEvent("cluster_restored", within: 20_000) != nil)
        #expect(try Self.acquire(try daemon.client(), wait: 10_000).ok, "shared grants resume")
        let metrics = try daemon.client().ask("metrics").string("text") ?? ""
        #expect(metrics.contains("turnstile_cluster_losses_total 1") && metrics.contains("turnstile_cluster_revoked_total 1"))
    }

    /// Under `on_loss = "keep"` a lease outlives its host's lease: frozen past its ttl, h1
    /// comes back with a new host lease and claims its holder's unit again, or, when h2 took
    /// every unit meanwhile, counts its holder in excess until it ends.
    @Test func underKeepALeaseOutlivesTheHostLeaseAndItsUnitIsClaimedAgainOrCountedInExcess() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body, onLoss: "keep")
        let two = try fleet.startDaemon(host: "h2", body: Self.body, onLoss: "keep")
        let holder = try one.client()
        let kept = try #require(try Self.acquire(holder).grant)
        #expect(kept.validUntilMilliseconds == nil, "no validity deadline under keep")

        one.process?.signal(SIGSTOP)
        let taker = try two.client()
        #expect(try Self.acquire(taker).ok)
        #expect(try Self.acquire(taker, wait: 10_000).ok, "h1's unit came free when its host lease expired")
        one.process?.signal(SIGCONT)
        #expect(one.logShows("cluster: claiming again the units of leases kept through the loss"))
        #expect(try holder.ask("heartbeat", [("lease", .string(kept.lease))]).ok, "the lease was kept")
        let excess = try Self.eventuallyTrue { (try one.client().ask("status")["cluster"]?.objectValue?["excess"]?.numberValue?.int64) == 1 }
        #expect(excess, "h2 holds both units: h1's holder runs in excess")
        #expect(try holder.ask("release", [("lease", .string(kept.lease))]).ok)
        #expect(try Self.eventuallyTrue { (try one.client().ask("status")["cluster"]?.objectValue?["excess"]?.numberValue?.int64) == 0 })
    }

    @Test func underKeepAUnitNobodyTookIsClaimedAgainUnderTheNewHostLease() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body, onLoss: "keep")
        let two = try fleet.startDaemon(host: "h2", body: Self.body, onLoss: "keep")
        let holder = try one.client()
        #expect(try Self.acquire(holder).ok)
        let seen = try Self.eventuallyTrue { (try two.client().ask("status")["cluster"]?.objectValue?["use"]?.objectValue?["fake/opus"]?
            .objectValue?["h1"]) != nil }
        #expect(seen, "h2's poll shows h1's unit")
        one.process?.signal(SIGSTOP)
        let taker = try two.client()
        #expect(try Self.acquire(taker).ok)
        // h1's host lease expires (its slot with it) while it is frozen: h2 sees its unit freed.
        #expect(try Self.eventuallyTrue { (try two.client().ask("status")["cluster"]?.objectValue?["use"]?.objectValue?["fake/opus"]?
            .objectValue?["h1"]) == nil })
        one.process?.signal(SIGCONT)
        #expect(one.logShows("cluster: claiming again the units of leases kept through the loss"))
        let use = try Self.eventuallyTrue {
            let use = try two.client().ask("status")["cluster"]?.objectValue?["use"]?.objectValue?["fake/opus"]?.objectValue
            return use?["h1"]?.numberValue?.int64 == 1 && use?["h2"]?.numberValue?.int64 == 1
        }
        #expect(use, "h1's kept lease holds its unit again")
        let refused = try Self.acquire(try two.client())
        #expect(refused.error == "unavailable" && refused.string("reason") == "model", "the fleet is at its limit: \(refused.object)")
        withExtendedLifetime((holder, taker)) {}  // their connections bind the leases
    }

    /// Polls `condition` every 20 ms for up to 10 s.
    static func eventuallyTrue(_ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = SocketStream.monotonicMilliseconds() + 10_000
        while SocketStream.monotonicMilliseconds() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }

    /// A revoked lease bound to a process group drains: its group, which ignores SIGTERM, is
    /// SIGKILLed by the safe deadline, not after `kill_grace_ms` (10 minutes here): past the
    /// deadline another host may be given its unit.
    @Test func aGroupDrainingAfterALossIsKilledByTheSafeDeadlineNotAfterTheGrace() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let daemon = try fleet.startDaemon(host: "h1", body: Self.body.replacingOccurrences(
            of: "global = 10", with: "global = 10\nkill_grace_ms = 600000"))
        let work = try ChildProcess(["python3", "-c", "import os,signal,time; os.setpgid(0,0); "
                                     + "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"])
        defer { work.signal(SIGKILL); _ = work.waitForExit() }
        #expect(work.waitForOutput("ready"))
        let client = try daemon.client()
        let grant = try client.ask("acquire", [("mode", .string("issue")), ("project", .string("p")), ("model", .string("fake/opus")),
                                               ("pgid", .integer(Int64(work.pid)))])
        let validFor = try #require(grant.grant?.validUntilMilliseconds, "\(grant.object)")
        let granted = SocketStream.monotonicMilliseconds()
        try fleet.pause(1)
        try fleet.pause(2)
        defer { try? fleet.resume(1); try? fleet.resume(2) }
        #expect(work.waitForExit(milliseconds: 10_000) != nil, "the group was killed")
        // By the safe deadline, which renewals may have moved on by at most a renewal period.
        #expect(SocketStream.monotonicMilliseconds() - granted < Int64(validFor) + 2_000)
        #expect(daemon.logShows("outlived kill_grace_ms after SIGTERM: sent SIGKILL"))
    }

    /// After a unit is given back, the next claim on the same host waits for its deletion to
    /// be acknowledged instead of finding the model full (a park then an unpark, a release then
    /// an acquire).
    @Test func aUnitGivenBackCanBeTakenAgainAtOnceOnTheSameHost() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let daemon = try fleet.startDaemon(host: "h1", body: Self.body)
        let client = try daemon.client()
        let first = try #require(try Self.acquire(client).grant)
        _ = try #require(try Self.acquire(client).grant)
        for _ in 0..<5 {
            #expect(try client.ask("park", [("lease", .string(first.lease))]).ok)
            let unparked = try client.ask("unpark", [("lease", .string(first.lease)), ("wait_ms", .integer(0))])
            #expect(unparked.ok, "the unit parked is had again at once: \(unparked.object)")
        }
    }

    @Test func aRestartedDaemonDoesNotKeepItsSharedLeaseAndItsUnitComesBack() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body)
        let two = try fleet.startDaemon(host: "h2", body: Self.body)
        #expect(try Self.acquire(try one.client(), detach: true).ok)
        #expect(try Self.acquire(try one.client(), model: nil, detach: true, mode: "time").ok)
        let parked = try #require(try Self.acquire(try one.client(), detach: true).grant)
        #expect(try one.client().ask("park", [("lease", .string(parked.lease))]).ok)
        one.crash()
        try one.start()
        #expect(one.logShows("cluster: available"))
        let leases = try one.client().ask("status")["leases"]?.arrayValue ?? []
        #expect(leases.count == 2, "the local lease and the parked one (no unit) are restored, the shared one is not: \(leases)")
        // Both units are the fleet's again: the restarted daemon deletes its old slots (the
        // parked lease's too, if the crash came before its deletion), or the old host lease
        // expires with them.
        let holder = try two.client()
        #expect(try Self.acquire(holder, wait: 10_000).ok)
        #expect(try Self.acquire(holder, wait: 10_000).ok, "the restarted host's old unit came back")
    }
}
