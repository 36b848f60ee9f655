import Foundation
import Synchronization
import Testing
import TurnstileClient
import TurnstileProtocol

/// Project caps and configured pools shared across hosts (`shared = [..., "projects", "pools"]`,
/// protocol/CLUSTER.md §2): two daemons count one project cap and one pool together, a grant
/// claims every shared limit it needs at once, and the limit found full is the refusal's reason.
@Suite("Shared project caps and pools through etcd", .serialized, .enabled(if: EtcdFleet.available, EtcdFleet.missing),
       .timeLimit(.minutes(2)))
struct SharedCapsTests {
    static let body = """
        [limits]
        global = 10

        [[projects]]
        name = "web"
        max = 2

        [[pools]]
        name = "gpu"
        limit = 1

        """
    static let shared = "\"models\", \"projects\", \"pools\""

    static func acquire(_ client: TurnstileClient, project: String, pools: [String] = [], wait: Int64 = 0) throws -> Answer {
        var fields: [(String, JSONValue)] = [("mode", .string("any")), ("project", .string(project)), ("wait_ms", .integer(wait))]
        if !pools.isEmpty { fields.append(("pools", .array(pools.map { .string($0) }))) }
        return try client.ask("acquire", fields)
    }

    @Test func twoHostsShareAProjectCapAndAPool() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body, shared: Self.shared)
        let two = try fleet.startDaemon(host: "h2", body: Self.body, shared: Self.shared)
        let holderOne = try one.client(), holderTwo = try two.client()

        let first = try #require(try Self.acquire(holderOne, project: "web").grant)
        let second = try #require(try Self.acquire(holderTwo, project: "web").grant)
        #expect(first.clusterFence != nil && second.clusterFence != nil, "each holds a unit of the shared cap")
        let third = try Self.acquire(try one.client(), project: "web")
        #expect(third.error == "unavailable" && third.string("reason") == "project", "the fleet's cap is 2: \(third.object)")
        #expect(third.message?.contains("across the cluster") == true, "\(third.object)")
        let elsewhere = try Self.acquire(try one.client(), project: "docs")
        #expect(elsewhere.ok && elsewhere.int("cluster_fence") == nil, "an uncapped project claims nothing")

        let waiter = try two.client()
        let waiting = try waiter.send("acquire", [("mode", .string("any")), ("project", .string("web")), ("wait_ms", .integer(10_000))])
        #expect(try holderOne.ask("release", [("lease", .string(first.lease))]).ok)
        #expect(try waiter.answer(to: waiting, timeoutMilliseconds: 10_000).grant != nil, "h1's unit goes to h2's waiter")

        // The pool: one unit across both hosts, claimed together with the project's.
        let gpu = try #require(try Self.acquire(holderOne, project: "docs", pools: ["gpu"]).grant)
        let blocked = try Self.acquire(holderTwo, project: "docs", pools: ["gpu"])
        #expect(blocked.error == "unavailable" && blocked.string("reason") == "pool", "\(blocked.object) \(blocked.message ?? "")")
        let both = try Self.acquire(holderTwo, project: "web", pools: ["gpu"])
        #expect(both.error == "unavailable", "neither unit is taken when one limit is full: \(both.object)")

        let seen = try SharedLimitTests.eventuallyTrue {
            let use = try two.client().ask("status")["cluster"]?.objectValue?["use"]?.objectValue
            return use?["projects:web"]?.objectValue?["h2"]?.numberValue?.int64 == 2
                && use?["pools:gpu"]?.objectValue?["h1"]?.numberValue?.int64 == 1
        }
        #expect(seen, "status shows each host's use of the shared cap and pool")
        #expect(try holderOne.ask("release", [("lease", .string(gpu.lease))]).ok)
        #expect(try SharedLimitTests.eventuallyTrue { try Self.acquire(try two.client(), project: "docs", pools: ["gpu"]).ok },
                "the pool's unit is free again for h2")
        withExtendedLifetime(second) {}
    }

    @Test func aHostWhoseSharedCapDisagreesOrIsMissingRefusesToStartAndAReloadCannotChangeIt() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body, shared: Self.shared)
        let other = Self.body.replacingOccurrences(of: "max = 2", with: "max = 5")
        let disagreeing = fleet.startRefusal(host: "h2", body: other, shared: Self.shared) ?? "a daemon whose shared project cap disagrees started"
        #expect(disagreeing.contains("the fleet's limit of shared cap of project web is 2"), "\(disagreeing)")
        #expect(disagreeing.contains("limits/projects/web"), "\(disagreeing)")
        let uncapped = Self.body.replacingOccurrences(of: "[[projects]]\nname = \"web\"\nmax = 2\n", with: "")
        #expect(uncapped != Self.body)
        let missing = fleet.startRefusal(host: "h3", body: uncapped, shared: Self.shared)
            ?? "a daemon that does not cap a project the fleet caps started"
        #expect(missing.contains("the fleet's limit of shared cap of project web is 2"), "\(missing)")
        #expect(missing.contains("this host's config sets none"), "\(missing)")
        let pool = Self.body.replacingOccurrences(of: "limit = 1", with: "limit = 3")
        try one.writeConfig(fleet.config(host: "h1", body: pool, shared: Self.shared))
        let reload = try one.client().ask("reload")
        #expect(reload.ok == false && reload.message?.contains("shared pool gpu would change from 1 to 3") == true, "\(reload.object)")
    }

    /// Six workers on two hosts loop acquire / hold 5 ms / release for 3 s, all naming a model
    /// of fleet limit 3; three in project web (fleet cap 2), two of the others taking pool gpu
    /// (fleet limit 1). From the workers' own records (grant received to release sent, inside
    /// the daemons' holds): never more holders at once than any limit, and every group served.
    @Test func loopingWorkersOnTwoHostsNeverExceedTheModelTheCapOrThePool() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let body = Self.body + "[[models]]\nname = \"fake/opus\"\nconcurrency_limit = 3\n"
        let daemons = [try fleet.startDaemon(host: "h1", body: body, shared: Self.shared),
                       try fleet.startDaemon(host: "h2", body: body, shared: Self.shared)]
        let holds = Holds()
        let finished = DispatchSemaphore(value: 0)
        for worker in 0..<6 {
            let project = worker < 3 ? "web" : "docs", pools = worker >= 4 ? ["gpu"] : []
            Thread.detachNewThread {
                defer { finished.signal() }
                Self.loop(on: daemons[worker % 2], project: project, pools: pools, holds: holds)
            }
        }
        for _ in 0..<6 { finished.wait() }
        let all = holds.list.withLock { $0 }
        #expect(Self.mostAtOnce(all) <= 3, "the model's fleet limit")
        #expect(Self.mostAtOnce(all.filter { $0.project == "web" }) <= 2, "web's fleet cap")
        #expect(Self.mostAtOnce(all.filter(\.gpu)) <= 1, "gpu's fleet limit")
        #expect(all.filter { $0.project == "web" }.count >= 5 && all.filter(\.gpu).count >= 5
                && all.filter { $0.project == "docs" && !$0.gpu }.count >= 5, "every group was served: \(all.count) holds")
        #expect(Set(all.map(\.clusterFence)).count == all.count, "no cluster_fence repeated")
    }

    /// One hold as its worker saw it (monotonic milliseconds).
    struct Hold: Sendable {
        let project: String
        let gpu: Bool
        let begin: Int64
        let end: Int64
        let clusterFence: UInt64
    }

    /// The holds the workers of the test above recorded.
    final class Holds: Sendable {
        let list = Mutex<[Hold]>([])
    }

    /// One worker of the test above.
    static func loop(on daemon: Daemon, project: String, pools: [String], holds: Holds) {
        guard let client = try? daemon.client() else { return }
        let end = SocketStream.monotonicMilliseconds() + 3_000
        while SocketStream.monotonicMilliseconds() < end {
            var fields: [(String, JSONValue)] = [("project", .string(project)), ("model", .string("fake/opus")),
                                                 ("wait_ms", .integer(5_000))]
            if !pools.isEmpty { fields.append(("pools", .array(pools.map { .string($0) }))) }
            guard let grant = (try? client.ask("acquire", fields))?.grant else { continue }
            let begin = SocketStream.monotonicMilliseconds()
            usleep(5_000)
            let hold = Hold(project: project, gpu: !pools.isEmpty, begin: begin, end: SocketStream.monotonicMilliseconds(),
                            clusterFence: grant.clusterFence ?? 0)
            holds.list.withLock { $0.append(hold) }
            _ = try? client.ask("release", [("lease", .string(grant.lease))])
        }
    }

    /// The most holds overlapping at one instant; a hold ending when another begins does not
    /// overlap it (ends are counted first).
    static func mostAtOnce(_ holds: [Hold]) -> Int {
        var events: [(at: Int64, change: Int)] = []
        for hold in holds { events += [(hold.begin, 1), (hold.end, -1)] }
        events.sort { $0.at != $1.at ? $0.at < $1.at : $0.change < $1.change }
        var current = 0, most = 0
        for (_, change) in events {
            current += change
            most = max(most, current)
        }
        return most
    }
}
