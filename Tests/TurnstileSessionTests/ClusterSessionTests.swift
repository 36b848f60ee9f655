import Testing
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// Shared model capacity over the in-memory transport (protocol/CLUSTER.md §3–§6): a claim per
/// acquire in the turn's outbox, the acquire answered once the claim succeeds with
/// `cluster_fence` and `valid_until_ms`, units given back, losses and restores told to watchers.
@Suite("Session: shared model capacity")
struct ClusterSessionTests {
    static let model = ModelKey(parsing: "p/a")!
    /// The cluster fence of the first claim `FakeCluster` answers: revision 101, index 0.
    static let firstClusterFence: Int64 = 101 * 1024

    /// A loop sharing `p/a` (limit 2) with a reachable cluster, its units safe for 4 s.
    static func sharingLoop(onLoss: ClusterConfig.LossPolicy = .revoke) -> EmbeddedTransport {
        let loop = EmbeddedTransport { config in
            config.cluster = ClusterConfig(endpoints: ["http://127.0.0.1:2379"], host: "builder-3", shared: [.models],
                                           onLoss: onLoss)
            config.providers = [ProviderConfig(name: "p", models: ["a"])]
            config.models = [ModelConfig(name: "p/a", concurrencyLimit: 2, tier: .premium)]
        }
        loop.session.clusterRestored(safeDeadline: loop.host.now.adding(milliseconds: 4_000))
        loop.commit()
        return loop
    }

    @Test func anAcquireOfASharedModelIsAnsweredOnceItsClaimSucceeds() throws {
        let loop = Self.sharingLoop()
        let cluster = FakeCluster()
        let watcher = loop.connect()
        loop.request(#"{"id":"w","op":"watch"}"#, on: watcher)
        _ = loop.received(watcher)
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","model":"p/a"}"#, on: client)
        #expect(loop.received(client).isEmpty, "not answered before the claim's outcome")
        #expect(loop.claimBatches == [[ClaimRequest(fence: 1, model: Self.model, limit: 2)]])

        loop.host.now = loop.host.now.adding(milliseconds: 3)
        cluster.settle(loop)
        let answer = try #require(loop.answer(client))
        #expect(answer.ok && answer.int("id") == 1 && answer.int("fence") == 1)
        #expect(answer.int("cluster_fence") == Self.firstClusterFence && answer.int("valid_until_ms") == 3_997)
        #expect(answer.int("waited_ms") == 3)
        let granted = try #require(loop.answer(watcher))
        #expect(granted.string("event") == "granted" && granted.int("cluster_fence") == Self.firstClusterFence)
        #expect(loop.journal.contains { $0.contains(#""t":"grant""#) })

        loop.request(#"{"id":2,"op":"status"}"#, on: client)
        let status = try #require(loop.answer(client))
        let lease = try #require(status["leases"]?.arrayValue?.first?.objectValue)
        #expect(lease.int("cluster_fence") == Self.firstClusterFence)
        let state = try #require(status["cluster"]?.objectValue)
        #expect(state["reachable"]?.boolValue == true && state.string("host") == "builder-3")
    }

    @Test func aTurnsClaimsLeaveTogether() {
        let loop = Self.sharingLoop()
        let client = loop.connect()
        let lines = (1...3).map { #"{"id":\#($0),"op":"acquire","model":"p/a","wait_ms":60000}"# + "\n" }.joined()
        loop.send(lines, on: client)
        #expect(loop.claimBatches.map(\.count) == [2], "two units fit the local limit; the third waits")
        #expect(loop.session.broker.waiterCount == 1)
    }

    @Test func aFailedClaimIsRefusedWithReasonModelAndAReleaseGivesItsUnitBack() throws {
        let loop = Self.sharingLoop()
        let cluster = FakeCluster()
        cluster.heldElsewhere[.model(Self.model)] = 1
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","model":"p/a"}"#, on: client)
        cluster.settle(loop)
        let lease = try #require(loop.answer(client)?.string("lease"))
        loop.request(#"{"id":2,"op":"acquire","model":"p/a"}"#, on: client)
        cluster.settle(loop)
        let refused = try #require(loop.answer(client))
        #expect(refused.string("error") == "unavailable" && refused.string("reason") == "model" && refused.int("id") == 2)

        loop.request(#"{"id":3,"op":"release","lease":"\#(lease)"}"#, on: client)
        #expect(try #require(loop.answer(client)).ok)
        #expect(loop.unclaims == [Unclaim(fence: 1, limits: [.model(Self.model)])])
        cluster.settle(loop)
        #expect(cluster.inUse(Self.model) == 1, "only the other host's unit is left")
    }

    @Test func aClaimThatDidNotApplyLeavesAgainUnderANewFence() throws {
        let loop = Self.sharingLoop()
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","model":"p/a"}"#, on: client)
        #expect(loop.session.claimNotApplied(fence: 1))
        loop.commit()
        #expect(loop.claimBatches.map { $0.map(\.fence) } == [[1], [2]])
        #expect(!loop.session.ownsSharedUnit(fence: 1) && loop.session.ownsSharedUnit(fence: 2))
        #expect(loop.received(client).isEmpty, "still claiming")
    }

    @Test func claimsLeaveOnlyOnceTheTurnIsSaved() {
        let loop = Self.sharingLoop()
        let client = loop.connect()
        loop.storageFails = true
        loop.request(#"{"id":1,"op":"acquire","model":"p/a"}"#, on: client)
        #expect(loop.claimBatches.isEmpty)
        loop.storageFails = false
        loop.commit()
        #expect(loop.claimBatches.map(\.count) == [1])
    }

    @Test func heartbeatsCarryTheSafeDeadline() throws {
        let loop = Self.sharingLoop()
        let cluster = FakeCluster()
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","model":"p/a"}"#, on: client)
        cluster.settle(loop)
        let lease = try #require(loop.answer(client)?.string("lease"))
        loop.session.clusterRenewed(safeDeadline: loop.host.now.adding(milliseconds: 6_000))
        loop.advance(1_000)
        loop.request(#"{"id":2,"op":"heartbeat","lease":"\#(lease)"}"#, on: client)
        #expect(try #require(loop.answer(client)).int("valid_until_ms") == 5_000)
        loop.request(#"{"id":3,"op":"heartbeat","leases":["\#(lease)"]}"#, on: client)
        let results = try #require(loop.answer(client)?["results"]?.arrayValue)
        #expect(results.first?.objectValue?.int("valid_until_ms") == 5_000)
    }

    @Test func aLossRevokesSharedLeasesAndTellsWatchersThenARestoreResumes() throws {
        let loop = Self.sharingLoop(onLoss: .revoke)
        let cluster = FakeCluster()
        let watcher = loop.connect()
        loop.request(#"{"id":"w","op":"watch"}"#, on: watcher)
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","model":"p/a"}"#, on: client)
        cluster.settle(loop)
        _ = loop.received(client)
        _ = loop.received(watcher)

        loop.session.clusterLost(safeDeadline: loop.host.now.adding(milliseconds: 3_000))
        loop.commit()
        let events = loop.received(watcher)
        #expect(events.map { $0.string("event") } == ["cluster_lost", "revoked"])
        #expect(events.first?.int("deadline_ms") == 3_000)
        #expect(loop.received(client).first?.string("event") == "revoked")
        loop.request(#"{"id":2,"op":"acquire","model":"p/a"}"#, on: client)
        let refused = try #require(loop.answer(client))
        #expect(refused.string("error") == "unavailable" && refused.string("reason") == "cluster")
        loop.request(#"{"id":3,"op":"acquire"}"#, on: client)
        #expect(try #require(loop.answer(client)).ok, "local-only grants go on")
        _ = loop.received(watcher)

        loop.session.clusterRestored(safeDeadline: loop.host.now.adding(milliseconds: 4_000))
        loop.commit()
        #expect(loop.received(watcher).map { $0.string("event") } == ["cluster_restored"])
        loop.request(#"{"id":4,"op":"acquire","model":"p/a"}"#, on: client)
        cluster.settle(loop)
        #expect(try #require(loop.answer(client)).ok)
    }

    @Test func aClaimingAcquireCanBeCancelledByItsID() throws {
        let loop = Self.sharingLoop()
        let cluster = FakeCluster()
        let client = loop.connect()
        loop.request(#"{"id":"x","op":"acquire","model":"p/a"}"#, on: client)
        loop.request(#"{"id":2,"op":"cancel","target":"x"}"#, on: client)
        let answers = loop.received(client)
        #expect(answers.map { $0.string("error") ?? "ok" } == ["ok", "cancelled"], "the cancel's answer, then the acquire's")
        cluster.settle(loop)
        #expect(loop.received(client).isEmpty && loop.unclaims.count == 1, "the unit won is given back")
        #expect(cluster.inUse(Self.model) == 1, "until the next settle deletes it")
    }
}
