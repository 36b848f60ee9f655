#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Conversions between TurnstileCluster's values and the generated etcd messages (Generated/),
// which never leave this module.

extension EtcdKeys {
    var rangeRequest: Etcdserverpb_RangeRequest {
        var request = Etcdserverpb_RangeRequest()
        let (key, rangeEnd) = bounds
        request.key = Data(key)
        request.rangeEnd = Data(rangeEnd)
        return request
    }

    var deleteRequest: Etcdserverpb_DeleteRangeRequest {
        var request = Etcdserverpb_DeleteRangeRequest()
        let (key, rangeEnd) = bounds
        request.key = Data(key)
        request.rangeEnd = Data(rangeEnd)
        return request
    }
}

extension EtcdCompare {
    var message: Etcdserverpb_Compare {
        var compare = Etcdserverpb_Compare()
        compare.key = Data(key.utf8)
        switch relation {
        case .equal: compare.result = .equal
        case .notEqual: compare.result = .notEqual
        case .less: compare.result = .less
        case .greater: compare.result = .greater
        }
        switch target {
        case .version(let version):
            compare.target = .version
            compare.version = version
        case .createRevision(let revision):
            compare.target = .create
            compare.createRevision = revision
        case .modRevision(let revision):
            compare.target = .mod
            compare.modRevision = revision
        case .value(let value):
            compare.target = .value
            compare.value = Data(value)
        case .lease(let lease):
            compare.target = .lease
            compare.lease = lease?.rawValue ?? 0
        }
        return compare
    }
}

extension EtcdOperation {
    static func putRequest(key: String, value: [UInt8], lease: EtcdLeaseID?) -> Etcdserverpb_PutRequest {
        var request = Etcdserverpb_PutRequest()
        request.key = Data(key.utf8)
        request.value = Data(value)
        request.lease = lease?.rawValue ?? 0
        return request
    }

    var message: Etcdserverpb_RequestOp {
        var operation = Etcdserverpb_RequestOp()
        switch self {
        case .put(let key, let value, let lease):
            operation.requestPut = Self.putRequest(key: key, value: value, lease: lease)
        case .get(let keys):
            operation.requestRange = keys.rangeRequest
        case .delete(let keys):
            operation.requestDeleteRange = keys.deleteRequest
        case .txn(let compares, let success, let failure):
            operation.requestTxn = Etcdserverpb_TxnRequest(compares: compares, success: success, failure: failure)
        }
        return operation
    }

    var mutates: Bool {
        switch self {
        case .get: false
        case .put, .delete: true
        case .txn(_, let success, let failure): success.contains(where: \.mutates) || failure.contains(where: \.mutates)
        }
    }
}

extension EtcdKeyValue {
    init(_ message: Mvccpb_KeyValue) {
        self.init(
            key: String(decoding: message.key, as: UTF8.self), value: Array(message.value),
            createRevision: message.createRevision, modRevision: message.modRevision, version: message.version,
            lease: message.lease == 0 ? nil : EtcdLeaseID(rawValue: message.lease))
    }
}

extension EtcdRangeResult {
    init(_ message: Etcdserverpb_RangeResponse) {
        self.init(revision: message.header.revision, keyValues: message.kvs.map(EtcdKeyValue.init),
                  count: message.count, more: message.more)
    }
}

extension EtcdDeleteResult {
    init(_ message: Etcdserverpb_DeleteRangeResponse) {
        self.init(revision: message.header.revision, deleted: message.deleted)
    }
}

extension EtcdTxnResult {
    init(_ message: Etcdserverpb_TxnResponse) {
        let results: [EtcdOperationResult] = message.responses.compactMap { response in
            switch response.response {
            case .responsePut(let put): .put(revision: put.header.revision)
            case .responseRange(let range): .get(EtcdRangeResult(range))
            case .responseDeleteRange(let delete): .delete(EtcdDeleteResult(delete))
            case .responseTxn(let nested): .txn(EtcdTxnResult(nested))
            case nil: nil
            }
        }
        self.init(succeeded: message.succeeded, revision: message.header.revision, results: results)
    }
}

extension Etcdserverpb_TxnRequest {
    init(compares: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation]) {
        self.init()
        compare = compares.map(\.message)
        self.success = success.map(\.message)
        self.failure = failure.map(\.message)
    }
}
