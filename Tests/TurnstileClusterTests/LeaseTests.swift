import Testing
import TurnstileCluster

extension ClusterTests {
    /// The host lease: granted, renewed (with the send time the daemon computes its deadline
    /// from), revoked, and expired when nobody renews it.
    @Suite("leases")
    struct LeaseTests {
        @Test func grantRenewAndRevoke() async throws {
            try await withCluster { _, client in
                let before = EtcdClock.now()
                let grant = try await client.grantLease(ttlSeconds: 5)
                #expect(grant.ttlSeconds == 5)
                #expect(grant.sentAt >= before)

                let sendBefore = EtcdClock.now()
                let renewal = try await client.keepAlive(grant.id)
                let answered = EtcdClock.now()
                #expect(renewal.id == grant.id && renewal.ttlSeconds == 5)
                #expect(renewal.sentAt >= sendBefore && renewal.sentAt <= answered, "sentAt is the renewal's send time")
                #expect(renewal.safeUntil == renewal.sentAt + 5_000_000_000)

                let live = try await client.leaseTimeToLive(grant.id)
                #expect(live.grantedTTLSeconds == 5 && (1...5).contains(live.ttlSeconds))

                try await client.revokeLease(grant.id)
                #expect(try await client.leaseTimeToLive(grant.id).ttlSeconds == -1)
                await #expect { try await client.keepAlive(grant.id) } throws: { error in
                    let error = error as? EtcdError
                    return error?.reason == .leaseNotFound && error?.outcome == .notApplied
                }
                await #expect { try await client.revokeLease(grant.id) } throws: { ($0 as? EtcdError)?.reason == .leaseNotFound }
            }
        }

        @Test func aLeaseNobodyRenewsExpiresWithItsKeys() async throws {
            try await withCluster { _, client in
                // etcd's minimum TTL here is 2 s (1.5 election timeouts of 1 s, rounded up).
                let grant = try await client.grantLease(ttlSeconds: 2)
                _ = try await client.put("expiring/a", Array("x".utf8), lease: grant.id)
                let start = ContinuousClock.now
                // Renewed once etcd's own countdown is under a second, it lives on past its first
                // TTL: the key is there when the renewed countdown is under a second again.
                let underASecond = { try await client.leaseTimeToLive(grant.id).ttlSeconds <= 0 }
                #expect(try await eventually(within: 3, underASecond))
                _ = try await client.keepAlive(grant.id)
                #expect(try await eventually(within: 3, underASecond))
                #expect(ContinuousClock.now - start > .seconds(2), "past the first TTL")
                #expect(try await client.range(.key("expiring/a")).count == 1, "renewed about a second ago, TTL 2 s")
                let gone = try await eventually(within: 6) {
                    try await client.range(.key("expiring/a")).count == 0
                }
                #expect(gone)
                #expect(ContinuousClock.now - start > .milliseconds(3200), "not before the renewed TTL ran out")
                await #expect { try await client.keepAlive(grant.id) } throws: { ($0 as? EtcdError)?.reason == .leaseNotFound }
                await #expect { try await client.put("expiring/b", [], lease: grant.id) } throws: { error in
                    let error = error as? EtcdError
                    return error?.reason == .leaseNotFound && error?.outcome == .notApplied
                }
            }
        }

        @Test func revokingALeaseDeletesEveryKeyOnIt() async throws {
            try await withCluster { _, client in
                let grant = try await client.grantLease(ttlSeconds: 30)
                for name in ["a", "b", "c"] { _ = try await client.put("host/\(name)", Array(name.utf8), lease: grant.id) }
                _ = try await client.put("host/unleased", Array("kept".utf8))
                let attached = try await client.leaseTimeToLive(grant.id)
                #expect(attached.keys.sorted() == ["host/a", "host/b", "host/c"])
                #expect(try await client.range(.prefix("host/")).count == 4)

                try await client.revokeLease(grant.id)
                let left = try await client.range(.prefix("host/"))
                #expect(left.keyValues.map(\.key) == ["host/unleased"])
                #expect(left.keyValues.first?.valueString == "kept" && left.keyValues.first?.lease == nil)
            }
        }
    }
}
