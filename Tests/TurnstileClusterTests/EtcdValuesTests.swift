import GRPCCore
import Testing
@testable import TurnstileCluster

/// The parts of the client that need no etcd: key ranges, endpoint URLs, error classification.
@Suite("etcd client values")
struct EtcdValuesTests {
    @Test func aPrefixCoversExactlyTheKeysThatStartWithIt() {
        #expect(EtcdKeys.key("a/b").bounds.key == Array("a/b".utf8))
        #expect(EtcdKeys.key("a/b").bounds.rangeEnd.isEmpty)
        #expect(EtcdKeys.prefix("sem/gpu/").bounds.rangeEnd == Array("sem/gpu0".utf8))
        #expect(EtcdKeys.prefix("ab").bounds.rangeEnd == Array("ac".utf8))
        // An empty prefix is the whole keyspace: etcd's ["\0", "\0").
        #expect(EtcdKeys.prefix("").bounds == ([0], [0]))
        // A multi-byte last character: its last (continuation) byte is incremented.
        #expect(EtcdKeys.prefix("é").bounds.rangeEnd == [0xc3, 0xaa])
    }

    @Test func endpointsAreHTTPOrHTTPSHostPort() {
        #expect(EtcdEndpoint.target("http://127.0.0.1:2379") != nil)
        #expect(EtcdEndpoint.target("https://127.0.0.1:2379") != nil)
        #expect(EtcdEndpoint.target("127.0.0.1:2379") != nil)
        #expect(EtcdEndpoint.target("http://[::1]:2379") != nil)
        #expect(EtcdEndpoint.target("http://etcd-1.example:2379/") != nil)
        for bad in ["ftp://127.0.0.1:2379", "https://127.0.0.1", "http://127.0.0.1", "http://127.0.0.1:0", "http://127.0.0.1:70000",
                    "http://:2379", "http://a:b:2379", "http://127.0.0.1:2379/v3"] {
            #expect(EtcdEndpoint.target(bad) == nil, "\(bad)")
        }
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: []) }
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: ["ftp://127.0.0.1:2379"]) }
    }

    @Test func aWriteThatNeverReachedAStreamWasNotApplied() {
        let unreachable = RPCError(code: .unavailable, message: "Channel is in a transient failure state")
        let before = EtcdError.classify(unreachable, streamOpened: false, mutates: true, endpoint: "e")
        #expect(before.outcome == .notApplied && before.reason == .unreachable && before.allowsFailover)
        let after = EtcdError.classify(unreachable, streamOpened: true, mutates: true, endpoint: "e")
        #expect(after.outcome == .unknown && after.reason == .unreachable && !after.allowsFailover)
    }

    @Test func aTimedOutWriteOnAStreamIsUnknownAndATimedOutReadIsNot() {
        let timeout = RPCError(code: .deadlineExceeded, message: "Timed out")
        #expect(EtcdError.classify(timeout, streamOpened: true, mutates: true, endpoint: "e").outcome == .unknown)
        #expect(EtcdError.classify(timeout, streamOpened: false, mutates: true, endpoint: "e").outcome == .notApplied)
        #expect(EtcdError.classify(timeout, streamOpened: true, mutates: false, endpoint: "e").outcome == .notApplied)
    }

    @Test func etcdRefusalsAreNotAppliedAndItsOwnTimeoutsAreUnknown() {
        func classify(_ code: RPCError.Code, _ message: String) -> EtcdError {
            EtcdError.classify(RPCError(code: code, message: message), streamOpened: true, mutates: true, endpoint: "e")
        }
        let noLeader = classify(.unavailable, "etcdserver: no leader")
        #expect(noLeader.outcome == .notApplied && noLeader.reason == .noLeader && noLeader.allowsFailover)
        let lease = classify(.notFound, "etcdserver: requested lease not found")
        #expect(lease.outcome == .notApplied && lease.reason == .leaseNotFound && !lease.allowsFailover)
        let tooMany = classify(.resourceExhausted, "etcdserver: too many requests")
        #expect(tooMany.outcome == .notApplied && tooMany.reason == .rejected)
        let duplicate = classify(.invalidArgument, "etcdserver: duplicate key given in txn request")
        #expect(duplicate.outcome == .notApplied && duplicate.reason == .rejected)
        let etcdTimeout = classify(.unavailable, "etcdserver: request timed out")
        #expect(etcdTimeout.outcome == .unknown && etcdTimeout.reason == .timedOut)
        let leaderChanged = classify(.unavailable, "etcdserver: leader changed")
        #expect(leaderChanged.outcome == .unknown && leaderChanged.reason == .noLeader)
        #expect(classify(.internalError, "boom").outcome == .unknown)
    }

    @Test func aKeepAliveIsSafeUntilItsSendTimePlusItsTTL() {
        let renewal = EtcdKeepAlive(id: EtcdLeaseID(rawValue: 7), ttlSeconds: 3, sentAt: 1_000)
        #expect(renewal.safeUntil == 3_000_001_000)
        #expect(EtcdLeaseID(rawValue: 0x694d_7a4b_1c2d_3e4f).description == "694d7a4b1c2d3e4f")
    }
}
