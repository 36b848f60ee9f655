/// Why an agent is being started: each acquire names one, and the mode quotas cap them.
///
/// `time` (scheduled) and `issue` (issue-driven) have global quotas; `mention` and `any` do not.
/// `any` has its own bucket: the seed counted it as time-driven without checking the time
/// quota, so it silently ate that quota.
public enum Mode: String, CaseIterable, Sendable, Codable, Hashable {
    case time, issue, mention, any

    /// The round-robin cursor's walking order (protocol/PROTOCOL.md).
    public static let rotation: [Mode] = [.time, .issue, .mention, .any]

    /// Position in `rotation`, for array-indexed per-mode counters.
    public var index: Int {
        switch self {
        case .time: 0
        case .issue: 1
        case .mention: 2
        case .any: 3
        }
    }
}

/// The order in which waiters are granted when capacity frees (README, "Waiting and fairness").
public enum FairnessPolicy: String, Sendable, Codable, Hashable {
    case roundRobin = "round_robin"
    case priority
    case proportional

    /// Parses a policy name case-insensitively, with the seed's aliases
    /// (`round_robin`, `round-robin`, `roundrobin`, `priority`, `proportional`).
    /// - Returns: nil for anything else: an unknown name is a config error, never a default.
    public init?(parsing name: String) {
        switch name.lowercased() {
        case "round_robin", "round-robin", "roundrobin": self = .roundRobin
        case "priority": self = .priority
        case "proportional": self = .proportional
        default: return nil
        }
    }
}
