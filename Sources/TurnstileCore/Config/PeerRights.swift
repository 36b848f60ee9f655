/// The credentials the kernel vouches for at the other end of a connection (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32

    public init(uid: UInt32, gid: UInt32, pid: Int32) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
    }
}

/// What a connected peer may do: nothing, the ordinary ops, or the admin ops too
/// (protocol/PROTOCOL.md, "Who may connect").
///
/// It exists as a value computed from the credentials and the access config so that the
/// daemon decides it in one place: when a peer connects and again after every reload (a uid
/// removed from `allow_uids` or `admin_uids` loses its rights on its open connections too).
public enum PeerRights: Sendable, Equatable, Comparable {
    /// Refused: the connection is answered `forbidden` and closed.
    case none
    /// Every op but the admin ones.
    case client
    /// Every op.
    case admin

    /// Decides a peer's rights.
    /// - Parameters:
    ///   - credentials: what SO_PEERCRED said, or nil if it could not be read: such a peer is
    ///     refused, never taken for root.
    ///   - access: the running config's access table.
    ///   - daemonUID: the uid the daemon runs as (its owner).
    /// - Returns: the rights; `.none` when the peer may not connect at all.
    public static func of(_ credentials: PeerCredentials?, access: AccessConfig, daemonUID: UInt32) -> PeerRights {
        guard let credentials else { return .none }
        let uid = credentials.uid
        if uid == daemonUID || uid == 0 || access.adminUIDs.contains(uid) { return .admin }
        if access.allowUIDs.contains(uid) || access.allowGIDs.contains(credentials.gid) { return .client }
        return .none
    }
}
