import Foundation
import Synchronization
import Testing
import TurnstileCluster

extension ClusterTests {
    /// The API the libuv daemon uses: calls from a thread that is not async, completions on the
    /// client's own loop thread.
    @Suite("completion handlers")
    struct CompletionTests {
        /// What the completions saw.
        final class Record: Sendable {
            let threads = Mutex<[UInt]>([])
            let outcomes = Mutex<[String]>([])

            func note(_ outcome: String) {
                threads.withLock { $0.append(UInt(bitPattern: Int(bitPattern: pthread_self()))) }
                outcomes.withLock { $0.append(outcome) }
            }
        }

        @Test func callsFromAPlainThreadCompleteOnTheClientsThread() async throws {
            try await withCluster { _, client in
                let record = Record()
                let caller = Mutex<UInt>(0)
                // A claim chained the way the daemon will do it: lease, then claim, then release.
                let thread = Thread {
                    caller.withLock { $0 = UInt(bitPattern: Int(bitPattern: pthread_self())) }
                    client.grantLease(ttlSeconds: 30) { grant in
                        guard case .success(let grant) = grant else { return record.note("grant failed: \(grant)") }
                        record.note("granted")
                        client.txn([.absent("c/0")], success: [.put("c/0", "me", lease: grant.id)]) { claim in
                            record.note((try? claim.get().succeeded) == true ? "claimed" : "claim failed: \(claim)")
                            client.deleteRange(.key("c/0")) { release in
                                record.note((try? release.get().deleted) == 1 ? "released" : "release failed: \(release)")
                            }
                        }
                    }
                    client.keepAlive(EtcdLeaseID(rawValue: 12345)) { renewal in
                        record.note(((try? renewal.get()) == nil) ? "unknown lease refused" : "renewed?")
                    }
                }
                thread.start()
                // Waited for without blocking: the client's calls run as tasks on Swift's
                // cooperative pool, which a blocked test thread (here, or in a test running
                // beside this one) would starve on a 2-core machine.
                let all = await eventually(within: 20) { record.outcomes.withLock { $0.count } >= 4 }
                #expect(all, "\(record.outcomes.withLock { $0 })")
                #expect(record.outcomes.withLock { $0.sorted() } == ["claimed", "granted", "released", "unknown lease refused"])
                let threads = Set(record.threads.withLock { $0 })
                #expect(threads.count == 1, "every completion on the one loop thread")
                #expect(!threads.contains(caller.withLock { $0 }))
            }
        }

        @Test func afterCloseACallCompletesAtOnceWithClosed() async throws {
            try await withCluster { _, client in
                let closed = Mutex(false)
                client.close { closed.withLock { $0 = true } }
                #expect(await eventually(within: 10) { closed.withLock { $0 } })
                let answer = Mutex<EtcdError?>(nil)
                client.put("late", [1]) { result in
                    if case .failure(let error) = result { answer.withLock { $0 = error } }
                }
                #expect(answer.withLock { $0 }?.reason == .closed, "completed before the call returned")
                await #expect { try await client.range(.key("late")) } throws: { ($0 as? EtcdError)?.reason == .closed }
            }
        }
    }
}
