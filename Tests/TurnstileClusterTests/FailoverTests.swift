import Testing
import TurnstileCluster

extension ClusterTests {
    /// Members dying, freezing and coming back: where calls go, and what a caller is told.
    @Suite("failover")
    struct FailoverTests {
        @Test func aCallToADeadMemberGoesToAnother() async throws {
            try await withCluster { cluster, client in
                // Member 1 comes first: it answers, then dies.
                _ = try await client.put("warm", [1])
                try cluster.kill(1)
                let start = ContinuousClock.now
                do {
                    _ = try await client.put("after-kill", [2])
                    #expect(ContinuousClock.now - start < .milliseconds(1500), "no 2 s deadline waited out")
                } catch let error as EtcdError where error.outcome == .unknown {
                    // Sent on the dead member's connection before its death was seen (a loaded
                    // machine): a write of unknown outcome is not resent; the next call goes to
                    // another member.
                    _ = try await client.put("after-kill", [2])
                }
                #expect(try await client.range(.key("after-kill")).count == 1)

                // A client whose first endpoint was never up.
                try await cluster.withClient(cluster.endpoints) { fresh throws in
                    let start = ContinuousClock.now
                    #expect(try await fresh.txn([.absent("fresh")], success: [.put("fresh", "1")]).succeeded)
                    #expect(ContinuousClock.now - start < .milliseconds(1500))
                }
                // Only dead endpoints: not applied, the last attempt's reason, by the deadline.
                try await cluster.withClient([cluster.endpoint(1)], timeout: .milliseconds(500)) { dead in
                    await #expect { try await dead.put("never", [0]) } throws: { error in
                        let error = error as? EtcdError
                        return error?.outcome == .notApplied && error?.reason == .unreachable
                    }
                }
            }
        }

        @Test func withoutQuorumAClaimTimesOutUnknownAndSucceedsAfterResume() async throws {
            try await withCluster { cluster, _ in
                try await cluster.withClient([2, 3, 1].map(cluster.endpoint), timeout: .seconds(1)) { client in
                    let lease = try await client.grantLease(ttlSeconds: 60).id
                    _ = try await client.range(.key("warm"))  // connected to member 2
                    try cluster.pause(2)
                    try cluster.pause(3)

                    // Member 2 holds our connection and answers nothing: the claim reached it,
                    // and may yet commit when it wakes.
                    let start = ContinuousClock.now
                    await #expect { try await claim(["sem/q/0"], for: lease, on: client) } throws: { error in
                        let error = error as? EtcdError
                        return error?.outcome == .unknown && error?.reason == .timedOut
                    }
                    let waited = ContinuousClock.now - start
                    #expect(waited >= .milliseconds(900) && waited < .seconds(3), "\(waited)")

                    // Member 1 alone: while it still thinks it leads or follows someone, a write
                    // reaches it and its outcome is unknown; once it knows it has no leader it
                    // refuses, and the call fails over (to itself, round after round) until its
                    // deadline: not applied.
                    var refusedKey: String?
                    try await cluster.withClient([cluster.endpoint(1)], timeout: .seconds(1)) { alone in
                        var attempt = 0
                        _ = await eventually(within: 10) {
                            attempt += 1
                            do throws(EtcdError) {
                                _ = try await alone.put("alone/\(attempt)", [1])
                            } catch where error.reason == .noLeader && error.outcome == .notApplied {
                                refusedKey = "alone/\(attempt)"
                                return true
                            } catch {}
                            return false
                        }
                    }
                    #expect(refusedKey != nil, "member 1 refused a write for want of a leader")

                    try cluster.resume(2)
                    try cluster.resume(3)
                    try cluster.waitHealthy()
                    // The caller resolves the unknown claim by reading back, and gets the slot.
                    _ = try await claimResolving(["sem/q/0"], for: lease, on: client, within: 10)
                    #expect(try await client.range(.key("sem/q/0")).keyValues.first?.lease == lease)
                    #expect(try await claim(["sem/q/1"], for: lease, on: client).succeeded)
                    if let refusedKey {
                        #expect(try await client.range(.key(refusedKey)).count == 0, "the refused write never happened")
                    }
                }
            }
        }

        @Test func theLeaderKilledAndRestarted() async throws {
            try await withCluster { cluster, _ in
                let leader = try cluster.leader()
                // The client talks to the leader first, so the kill cuts its own member.
                let order = [leader] + (1...3).filter { $0 != leader }
                try await cluster.withClient(order.map(cluster.endpoint)) { client in
                    let lease = try await client.grantLease(ttlSeconds: 30).id
                    #expect(try await claim(["sem/l/0"], for: lease, on: client).succeeded)

                    try cluster.kill(leader)
                    let start = ContinuousClock.now
                    let attempts = try await claimResolving(["sem/l/1"], for: lease, on: client, within: 15)
                    let took = ContinuousClock.now - start
                    #expect(took < .seconds(8), "claimed \(took) after the kill, in \(attempts) attempts")
                    // The host lease survives the election.
                    #expect(try await client.keepAlive(lease).ttlSeconds == 30)
                    #expect(try cluster.leader() != leader)

                    try cluster.restart(leader)
                    // The restarted member caught up: reading through it alone sees both claims.
                    try await cluster.withClient([cluster.endpoint(leader)]) { rejoined in
                        let held = try await rejoined.range(.prefix("sem/l/"))
                        #expect(held.keyValues.map(\.key) == ["sem/l/0", "sem/l/1"])
                        #expect(held.keyValues.allSatisfy { $0.lease == lease })
                    }
                }
            }
        }
    }
}
