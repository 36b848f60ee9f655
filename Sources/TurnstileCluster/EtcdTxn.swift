/// One condition of a transaction. A shared claim is one transaction whose compares say "none of
/// these keys exists yet" (`EtcdCompare.absent`, i.e. create_revision == 0) and whose success
/// branch puts them all on the host lease, so a grant takes all its shared capacity or none.
public struct EtcdCompare: Hashable, Sendable {
    /// How the key's field compares with the target.
    public enum Relation: Hashable, Sendable {
        case equal, notEqual, less, greater
    }

    /// The field compared and the value it is compared with.
    public enum Target: Hashable, Sendable {
        case version(Int64)
        case createRevision(Int64)
        case modRevision(Int64)
        case value([UInt8])
        /// The key's lease (nil: no lease).
        case lease(EtcdLeaseID?)
    }

    public var key: String
    public var relation: Relation
    public var target: Target

    public init(key: String, _ relation: Relation, _ target: Target) {
        self.key = key
        self.relation = relation
        self.target = target
    }

    /// The key does not exist (its create revision is 0): the semaphore recipe's claim test.
    public static func absent(_ key: String) -> EtcdCompare {
        EtcdCompare(key: key, .equal, .createRevision(0))
    }

    /// The key exists.
    public static func present(_ key: String) -> EtcdCompare {
        EtcdCompare(key: key, .greater, .createRevision(0))
    }

    public static func createRevision(_ key: String, _ relation: Relation, _ revision: Int64) -> EtcdCompare {
        EtcdCompare(key: key, relation, .createRevision(revision))
    }

    public static func modRevision(_ key: String, _ relation: Relation, _ revision: Int64) -> EtcdCompare {
        EtcdCompare(key: key, relation, .modRevision(revision))
    }

    public static func version(_ key: String, _ relation: Relation, _ version: Int64) -> EtcdCompare {
        EtcdCompare(key: key, relation, .version(version))
    }

    public static func value(_ key: String, _ relation: Relation, _ value: [UInt8]) -> EtcdCompare {
        EtcdCompare(key: key, relation, .value(value))
    }

    public static func lease(_ key: String, _ relation: Relation, _ lease: EtcdLeaseID?) -> EtcdCompare {
        EtcdCompare(key: key, relation, .lease(lease))
    }
}

/// One operation of a transaction branch (and the shape of the standalone calls).
public enum EtcdOperation: Hashable, Sendable {
    /// Writes `value` at `key`, attached to `lease` when given (deleted when the lease goes).
    case put(key: String, value: [UInt8], lease: EtcdLeaseID?)
    case get(EtcdKeys)
    case delete(EtcdKeys)
    /// A nested transaction (etcd ≥ 3.3): its compares decide which of its branches runs, so one
    /// round trip can carry independent conditional writes (one per claim) that each succeed or
    /// fail alone. etcd refuses two nested puts of one key in a branch.
    indirect case txn(compares: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation])

    /// A put of a UTF-8 value.
    public static func put(_ key: String, _ value: String, lease: EtcdLeaseID? = nil) -> EtcdOperation {
        .put(key: key, value: Array(value.utf8), lease: lease)
    }
}

/// What one operation of the branch that ran returned, in the order of the operations.
public enum EtcdOperationResult: Hashable, Sendable {
    case put(revision: Int64)
    case get(EtcdRangeResult)
    case delete(EtcdDeleteResult)
    /// A nested transaction's outcome; its `revision` is the enclosing transaction's.
    indirect case txn(EtcdTxnResult)
}

/// A transaction's outcome: which branch ran, at which revision, and what its operations returned.
/// A claim that lost (`succeeded == false`) can read the holders in the same round trip by putting
/// `.get` operations in the failure branch.
public struct EtcdTxnResult: Hashable, Sendable {
    public var succeeded: Bool
    /// The store's revision after the transaction (unchanged when it wrote nothing).
    public var revision: Int64
    public var results: [EtcdOperationResult]

    public init(succeeded: Bool, revision: Int64, results: [EtcdOperationResult]) {
        self.succeeded = succeeded
        self.revision = revision
        self.results = results
    }
}
