import Testing
import TurnstileCluster

extension ClusterTests {
    /// Claims as one transaction, reads by prefix, deletes.
    @Suite("keys and transactions")
    struct KeyValueTests {
        @Test func aClaimTakesEverySlotOrNone() async throws {
            try await withCluster { _, client in
                let host1 = try await client.grantLease(ttlSeconds: 30).id
                let host2 = try await client.grantLease(ttlSeconds: 30).id
                let slots = ["sem/gpu/0", "sem/build/0"]

                let won = try await claim(slots, for: host1, value: "host1", on: client)
                #expect(won.succeeded && won.revision > 0)
                #expect(won.results == [.put(revision: won.revision), .put(revision: won.revision)], "one revision for both")

                // Host 2 wants one of them and a free one: nothing of it is taken, and the failure
                // branch says who holds what.
                let lost = try await claim(["sem/build/0", "sem/disk/0"], for: host2, value: "host2", on: client)
                #expect(!lost.succeeded)
                #expect(lost.revision == won.revision, "a failed claim writes nothing")
                guard case .get(let holder) = lost.results.first, case .get(let free) = lost.results.last else {
                    Issue.record("expected the failure branch's reads: \(lost.results)")
                    return
                }
                #expect(holder.keyValues.first?.valueString == "host1" && holder.keyValues.first?.lease == host1)
                #expect(holder.keyValues.first?.createRevision == won.revision)
                #expect(free.count == 0)
                #expect(try await client.range(.key("sem/disk/0")).count == 0)

                // Release (delete), then host 2's claim goes through.
                #expect(try await client.deleteRange(.key("sem/build/0")).deleted == 1)
                let second = try await claim(["sem/build/0", "sem/disk/0"], for: host2, value: "host2", on: client)
                #expect(second.succeeded && second.revision > won.revision)

                // A compare on a known create revision: only the holder of that creation passes.
                let held = try await client.range(.key("sem/gpu/0")).keyValues[0]
                let stale = try await client.txn([.createRevision("sem/gpu/0", .equal, held.createRevision + 1)],
                                                 success: [.delete(.key("sem/gpu/0"))])
                #expect(!stale.succeeded)
                let exact = try await client.txn([.createRevision("sem/gpu/0", .equal, held.createRevision),
                                                  .lease("sem/gpu/0", .equal, host1), .value("sem/gpu/0", .equal, Array("host1".utf8))],
                                                 success: [.delete(.key("sem/gpu/0"))])
                #expect(exact.succeeded)
                #expect(exact.results == [.delete(EtcdDeleteResult(revision: exact.revision, deleted: 1))])
            }
        }

        /// etcd answers nearly every call with an HTTP/2 PING, and swift-nio-http2 drops a
        /// connection that gets more than 200 in 30 s: the client replaces its connections before
        /// that, without failing the calls under way on the old one.
        @Test func connectionsAreReplacedWithoutFailingACall() async throws {
            try await withCluster { cluster, client in
                let lease = try await client.grantLease(ttlSeconds: 30).id
                for index in 0..<300 {
                    let slot = "sem/run/\(index % 4)"
                    #expect(try await claim([slot], for: lease, on: client).succeeded)
                    #expect(try await client.deleteRange(.key(slot)).deleted == 1)
                }
                // Many calls in flight while connections are replaced every 20 calls.
                var configuration = EtcdClient.Configuration()
                configuration.callsPerConnection = 20
                let churning = try EtcdClient(endpoints: cluster.endpoints, configuration: configuration)
                let failures = await withTaskGroup(of: Int.self) { group in
                    for worker in 0..<16 {
                        group.addTask {
                            var failures = 0
                            for round in 0..<30 {
                                let slot = "sem/churn/\(worker)"
                                do throws(EtcdError) {
                                    if try await !claim([slot], for: lease, on: churning).succeeded { failures += 1 }
                                    _ = try await churning.deleteRange(.key(slot))
                                } catch {
                                    Issue.record("worker \(worker) round \(round): \(error)")
                                    failures += 1
                                }
                            }
                            return failures
                        }
                    }
                    return await group.reduce(0, +)
                }
                await churning.close()
                #expect(failures == 0)
            }
        }

        @Test func etcdRefusesATxnThatWritesAKeyTwiceAndNothingIsApplied() async throws {
            try await withCluster { _, client throws in
                await #expect { try await client.txn([], success: [.put("dup", "1"), .put("dup", "2")]) } throws: { error in
                    let error = error as? EtcdError
                    return error?.reason == .rejected && error?.outcome == .notApplied
                }
                #expect(try await client.range(.key("dup")).count == 0)
            }
        }

        @Test func rangeByPrefixAndDelete() async throws {
            try await withCluster { _, client in
                for key in ["p", "p/a", "p/b", "p/c", "p0", "q/a"] { _ = try await client.put(key, Array(key.utf8)) }

                let all = try await client.range(.prefix("p/"))
                #expect(all.keyValues.map(\.key) == ["p/a", "p/b", "p/c"])
                #expect(all.count == 3 && !all.more)
                #expect(all.keyValues.map(\.valueString) == ["p/a", "p/b", "p/c"])

                let some = try await client.range(.prefix("p/"), limit: 2)
                #expect(some.keyValues.count == 2 && some.count == 3 && some.more)

                let one = try await client.range(.key("p"))
                #expect(one.keyValues.map(\.key) == ["p"] && one.keyValues[0].version == 1)
                #expect(try await client.range(.prefix("")).count == 6, "every key")

                let deleted = try await client.deleteRange(.prefix("p/"))
                #expect(deleted.deleted == 3 && deleted.revision > all.revision)
                #expect(try await client.range(.prefix("p")).keyValues.map(\.key) == ["p", "p0"])
                #expect(try await client.deleteRange(.key("q/a")).deleted == 1)
                #expect(try await client.deleteRange(.key("q/a")).deleted == 0)
            }
        }
    }
}
