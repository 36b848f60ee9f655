import Foundation
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
        do {
            _ = try Daemon(config: fleet.config(host: "h2", body: other, shared: Self.shared))
            Issue.record("a daemon whose shared project cap disagrees started")
        } catch {
            #expect("\(error)".contains("the fleet's limit of shared cap of project web is 2"), "\(error)")
            #expect("\(error)".contains("limits/projects/web"), "\(error)")
        }
        let uncapped = Self.body.replacingOccurrences(of: "[[projects]]\nname = \"web\"\nmax = 2\n", with: "")
        #expect(uncapped != Self.body)
        do {
            _ = try Daemon(config: fleet.config(host: "h3", body: uncapped, shared: Self.shared))
            Issue.record("a daemon that does not cap a project the fleet caps started")
        } catch {
            #expect("\(error)".contains("the fleet's limit of shared cap of project web is 2"), "\(error)")
            #expect("\(error)".contains("this host's config sets none"), "\(error)")
        }
        let pool = Self.body.replacingOccurrences(of: "limit = 1", with: "limit = 3")
        try one.writeConfig(fleet.config(host: "h1", body: pool, shared: Self.shared))
        let reload = try one.client().ask("reload")
        #expect(reload.ok == false && reload.message?.contains("shared pool gpu would change from 1 to 3") == true, "\(reload.object)")
    }
}
