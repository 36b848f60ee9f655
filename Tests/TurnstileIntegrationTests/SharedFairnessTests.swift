import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// The fleet's line for a shared model (protocol/CLUSTER.md §4): waiters are served in order of
/// arrival in the cluster, whichever host they wait on; under `fairness = "priority"` a later
/// waiter of higher priority on another host is served before an earlier one.
@Suite("Shared limits: the fleet's line", .serialized, .enabled(if: EtcdFleet.available, EtcdFleet.missing),
       .timeLimit(.minutes(2)))
struct SharedFairnessTests {
    static func body(fairness: String) -> String {
        "[limits]\nglobal = 10\nfairness = \"\(fairness)\"\n\n[[models]]\nname = \"fake/opus\"\nconcurrency_limit = 1\n"
    }

    /// The tickets for fake/opus in etcd, in key order: each waiter's host with the priority its
    /// ticket carries.
    static func tickets(_ fleet: EtcdFleet) throws -> [String] {
        let prefix = "/turnstile/test-\((fleet.directory as NSString).lastPathComponent)/tickets/models/fake%2Fopus/"
        let process = try ChildProcess(["etcdctl", "--endpoints=\(fleet.endpoints.joined(separator: ","))", "get", "--prefix", prefix])
        guard process.waitForExit(milliseconds: 10_000) != nil, process.exitCode == 0 else {
            throw DaemonError(message: "etcdctl get failed: \(process.output)")
        }
        // Key and value lines in turn.
        let lines = process.output.split(separator: "\n").map(String.init)
        return stride(from: 0, to: lines.count - 1, by: 2).map { index in
            let host = lines[index].dropFirst(prefix.count).prefix { $0 != "/" }
            return "\(host) \(lines[index + 1])"
        }
    }

    static func waiting(_ client: TurnstileClient, priority: Int) throws -> Int {
        try client.send("acquire", [("mode", .string("issue")), ("project", .string("p")), ("model", .string("fake/opus")),
                                    ("wait_ms", .integer(30_000)), ("priority", .integer(Int64(priority)))])
    }

    /// h1 holds the unit; h2's waiter (priority 0) queues for the fleet, then h3's (priority 5).
    /// When h1 gives the unit back, the fleet's line decides who gets it.
    @Test(arguments: [("priority", "h3"), ("round_robin", "h2")])
    func theUnitGoesToTheFirstInTheFleetsLine(fairness: String, first: String) throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let body = Self.body(fairness: fairness)
        let daemons = try ["h1", "h2", "h3"].map { try fleet.startDaemon(host: $0, body: body) }
        let holder = try daemons[0].client()
        let held = try #require(try SharedLimitTests.acquire(holder).grant)

        let early = try daemons[1].client(), late = try daemons[2].client()
        let earlyID = try Self.waiting(early, priority: 0)
        #expect(try SharedLimitTests.eventuallyTrue { try Self.tickets(fleet) == ["h2 {\"priority\":0}"] }, "h2 queues for the fleet")
        let lateID = try Self.waiting(late, priority: 5)
        let lateTicket = fairness == "priority" ? "h3 {\"priority\":5}" : "h3 {\"priority\":0}"
        // Not only eventually: h3 queues with its waiter's priority from the start.
        #expect(try SharedLimitTests.eventuallyTrue { try Self.tickets(fleet).count == 2 })
        #expect(try Self.tickets(fleet) == ["h2 {\"priority\":0}", lateTicket], "then h3")

        #expect(try holder.ask("release", [("lease", .string(held.lease))]).ok)
        let (winner, winnerID, loser, loserID) = first == "h3" ? (late, lateID, early, earlyID) : (early, earlyID, late, lateID)
        let granted = try #require(try winner.answer(to: winnerID, timeoutMilliseconds: 10_000).grant,
                                   "\(first) is first in the fleet's line under \(fairness)")
        #expect(try winner.ask("release", [("lease", .string(granted.lease))]).ok)
        #expect(try loser.answer(to: loserID, timeoutMilliseconds: 10_000).grant != nil, "then the other")
        withExtendedLifetime(holder) {}
    }

    /// h1 holds the unit; two waiters arrive on h2, then one on h3. Each release serves the
    /// next in order of arrival: h2's second waiter before h3's, though h2 was just served
    /// (a line host by host would send the unit to h3 next).
    @Test func waitersAreServedInOrderOfArrivalInTheClusterWhicheverHostTheyWaitOn() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let body = Self.body(fairness: "round_robin")
        let daemons = try ["h1", "h2", "h3"].map { try fleet.startDaemon(host: $0, body: body) }
        let holder = try daemons[0].client()
        let held = try #require(try SharedLimitTests.acquire(holder).grant)

        let first = try daemons[1].client(), second = try daemons[1].client(), third = try daemons[2].client()
        var waits: [(TurnstileClient, Int)] = []
        for (index, client) in [first, second, third].enumerated() {
            waits.append((client, try Self.waiting(client, priority: 0)))
            #expect(try SharedLimitTests.eventuallyTrue { try Self.tickets(fleet).count == index + 1 }, "waiter \(index + 1) queues")
        }
        var lease = held.lease, owner = holder
        for (index, (client, id)) in waits.enumerated() {
            #expect(try owner.ask("release", [("lease", .string(lease))]).ok)
            // Served out of turn, the unit would go to a later waiter, which keeps it: this one
            // would then wait in vain.
            let granted = try #require(try client.answer(to: id, timeoutMilliseconds: 10_000).grant, "waiter \(index + 1) is served next")
            (lease, owner) = (granted.lease, client)
        }
    }
}
