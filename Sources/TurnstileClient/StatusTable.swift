import TurnstileProtocol

/// Renders the daemon's `status` answer as the readable table `turnstile status` prints:
/// limits and use, projects, models, leases (holder, age, last heartbeat), waiters summed by
/// reason, mode and project and then listed, paused projects, throttles. Pure: the same
/// answer gives the same text.
public enum StatusTable {
    /// Which leases and waiters the lists show (the summary counts every waiter).
    public struct Filter: Sendable {
        public var project: String?
        public var mode: String?
        /// Only the waiters: no lease list.
        public var waitingOnly = false

        public init(project: String? = nil, mode: String? = nil, waitingOnly: Bool = false) {
            self.project = project
            self.mode = mode
            self.waitingOnly = waitingOnly
        }

        func admits(_ entry: JSONObject) -> Bool {
            (project == nil || entry["project"]?.stringValue == project) && (mode == nil || entry["mode"]?.stringValue == mode)
        }
    }

    public static func render(_ status: JSONObject, filter: Filter = Filter()) -> String {
        var out: [String] = []
        let server = status["server"]?.objectValue
        let global = status["global"]?.objectValue
        out.append("turnstiled \(text(server?["version"])) (pid \(text(server?["pid"])), up \(duration(server?["uptime_ms"])))"
                   + " · fairness \(text(status["fairness"]))")
        out.append("PERMITS   \(text(global?["in_use"]))/\(text(global?["limit"])) in use · \(text(global?["waiting"])) waiting")
        let modes = (status["modes"]?.objectValue?.members ?? []).map { member -> String in
            let mode = member.value.objectValue
            let limit = mode?["limit"].flatMap { $0.isNull ? nil : text($0) }
            return "\(member.key) \(text(mode?["in_use"]))" + (limit.map { "/\($0)" } ?? "")
        }
        out.append("MODES     " + modes.joined(separator: " · "))
        let pools = (status["pools"]?.objectValue?.members ?? []).map { member -> String in
            let pool = member.value.objectValue
            let adHoc = pool?["ad_hoc"]?.boolValue == true ? " (ad hoc)" : ""
            let waiting = pool?["waiting"]?.numberValue?.int64 ?? 0
            let queue = waiting > 0 ? " +\(waiting) waiting" : ""
            return "\(TerminalText.safe(member.key)) \(text(pool?["in_use"]))/\(text(pool?["limit"]))\(queue)\(adHoc)"
        }
        if !pools.isEmpty { out.append("POOLS     " + pools.joined(separator: " · ")) }
        appendProjects(status, to: &out)
        appendModels(status, to: &out)
        appendCluster(status, to: &out)
        if !filter.waitingOnly { appendLeases(status, filter, to: &out) }
        appendWaiting(status, filter, to: &out)
        let throttles = status["throttles"]?.arrayValue?.compactMap(\.objectValue) ?? []
        if !throttles.isEmpty {
            out.append("THROTTLES")
            for throttle in throttles {
                out.append("  \(text(throttle["provider"])) for tenant \(text(throttle["tenant"])): \(duration(throttle["retry_after_ms"])) left")
            }
        }
        let paused = status["paused"]?.arrayValue?.compactMap(\.stringValue).map(TerminalText.safe) ?? []
        if !paused.isEmpty { out.append("PAUSED    " + paused.joined(separator: ", ")) }
        return out.joined(separator: "\n") + "\n"
    }

    private static func appendProjects(_ status: JSONObject, to out: inout [String]) {
        let projects = status["projects"]?.objectValue?.members ?? []
        guard !projects.isEmpty else { return }
        out.append("PROJECTS")
        var rows = [["PROJECT", "IN USE", "MENTION", "PAUSED", "FAILURES"]]
        for member in projects {
            let project = member.value.objectValue
            rows.append([TerminalText.safe(member.key), "\(text(project?["in_use"]))/\(limit(project?["limit"]))",
                         "\(text(project?["mention_in_use"]))/\(limit(project?["mention_limit"]))",
                         project?["paused"]?.boolValue == true ? "paused" : "-", text(project?["failures"])])
        }
        out += columns(rows)
    }

    private static func appendModels(_ status: JSONObject, to out: inout [String]) {
        let models = status["models"]?.objectValue?.members ?? []
        guard !models.isEmpty else { return }
        out.append("MODELS")
        var rows = [["MODEL", "IN USE", "TIER", "TOOLS", "SUBSCRIPTION"]]
        for member in models {
            let model = member.value.objectValue
            let limited = model?["subscription_limited"]?.boolValue == true
            rows.append([TerminalText.safe(member.key), "\(text(model?["in_use"]))/\(text(model?["limit"]))", text(model?["tier"]),
                         model?["tools"]?.boolValue == true ? "yes" : "no",
                         limited ? "limited \(duration(model?["limited_for_ms"]))" : "ok"])
        }
        out += columns(rows)
    }

    /// The cluster shared limits go through (protocol/CLUSTER.md §6): this host's state and,
    /// per shared model, the units each host holds.
    private static func appendCluster(_ status: JSONObject, to out: inout [String]) {
        guard let cluster = status["cluster"]?.objectValue else { return }
        var line = "CLUSTER   \(TerminalText.safe(text(cluster["host"]))) · \(text(cluster["state"])) · on_loss \(text(cluster["on_loss"]))"
        if cluster["valid_until_ms"] != nil { line += " · safe for \(duration(cluster["valid_until_ms"]))" }
        if let claiming = cluster["claiming"]?.numberValue?.int64, claiming > 0 { line += " · \(claiming) claiming" }
        if let excess = cluster["excess"]?.numberValue?.int64, excess > 0 { line += " · \(excess) in excess" }
        out.append(line)
        for member in cluster["use"]?.objectValue?.members ?? [] {
            let hosts = (member.value.objectValue?.members ?? []).map { "\(TerminalText.safe($0.key)) \(text($0.value))" }
            out.append("  \(TerminalText.safe(member.key)): " + hosts.joined(separator: " · "))
        }
        if let problem = cluster["problem"]?.stringValue { out.append("  not joined: \(TerminalText.safe(problem))") }
    }

    private static func appendLeases(_ status: JSONObject, _ filter: Filter, to out: inout [String]) {
        let leases = (status["leases"]?.arrayValue?.compactMap(\.objectValue) ?? []).filter(filter.admits)
        out.append("LEASES" + (leases.isEmpty ? "    none" : ""))
        guard !leases.isEmpty else { return }
        // A POOLS column only when a lease holds a unit of a pool (README "Concepts").
        let showPools = leases.contains { $0["pools"] != nil }
        var rows = [["FENCE", "PROJECT", "MODE", "MODEL", "HOLDER", "PID", "AGE", "HEARTBEAT", "EXPIRES"]
            + (showPools ? ["POOLS"] : []) + ["STATE"]]
        for lease in leases {
            var state = lease["bound"]?.boolValue == true ? "bound" : "detached"
            if lease["parked"]?.boolValue == true { state += ",parked" }
            if let cause = lease["draining"]?.stringValue {
                state = "draining (\(cause), group \(text(lease["pgid"])), \(duration(lease["draining_ms"])))"
            }
            rows.append([text(lease["fence"]), text(lease["project"]), text(lease["mode"]), text(lease["model"]),
                         text(lease["holder"]), process(lease), duration(lease["age_ms"]),
                         duration(lease["since_heartbeat_ms"]) + " ago",
                         lease["draining"] == nil ? "in " + duration(lease["expires_in_ms"]) : "-"]
                + (showPools ? [text(lease["pools"])] : []) + [state])
        }
        out += columns(rows)
    }

    /// The PID column: the bound process, or `-PGID` for a process group (as `kill` writes it).
    private static func process(_ lease: JSONObject) -> String {
        if lease["pid"]?.numberValue == nil, let group = lease["pgid"]?.numberValue { return "-" + group.text }
        return text(lease["pid"])
    }

    private static func appendWaiting(_ status: JSONObject, _ filter: Filter, to out: inout [String]) {
        let all = status["waiting"]?.arrayValue?.compactMap(\.objectValue) ?? []
        guard !all.isEmpty else { return }
        out.append("WAITING   \(all.count) · " + summary(all))
        let waiting = all.filter(filter.admits)
        guard !waiting.isEmpty else { return }
        var rows = [["POS", "PROJECT", "MODE", "MODEL", "HOLDER", "PRIORITY", "REASON", "WAITED"]]
        for waiter in waiting {
            rows.append([text(waiter["position"]), text(waiter["project"]), text(waiter["mode"]), text(waiter["model"]),
                         text(waiter["holder"]), text(waiter["priority"]), text(waiter["reason"]), duration(waiter["waited_ms"])])
        }
        out += columns(rows)
    }

    /// "by reason: global 180, workspace_lock 20 · by mode: … · by project: …", most first.
    static func summary(_ waiting: [JSONObject]) -> String {
        ["reason", "mode", "project"].map { key in
            var counts: [String: Int] = [:]
            for waiter in waiting { counts[text(waiter[key]), default: 0] += 1 }
            let sorted = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            return "by \(key): " + sorted.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }.joined(separator: " · ")
    }

    /// Left-aligned columns, two spaces apart, indented by two.
    public static func columns(_ rows: [[String]]) -> [String] {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            var line = "  "
            for (index, cell) in row.enumerated() {
                line += index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
            }
            return line
        }
    }

    public static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let string)?: TerminalText.safe(string)
        case .number(let number)?: number.text
        case .bool(let flag)?: flag ? "yes" : "no"
        case .array(let items)? where !items.isEmpty: items.map { text($0) }.joined(separator: ",")
        default: "-"
        }
    }

    private static func limit(_ value: JSONValue?) -> String {
        guard let value, !value.isNull else { return "-" }
        return text(value)
    }

    private static func duration(_ value: JSONValue?) -> String {
        guard let milliseconds = value?.numberValue?.uint64 else { return "-" }
        return Durations.describe(milliseconds: milliseconds)
    }
}

/// One line per `watch` event, for people: `granted fence=12 project=alpha mode=issue …`;
/// a value with a space, `=` or a quote is double-quoted.
public enum EventLine {
    public static func render(_ event: JSONObject) -> String {
        let name = TerminalText.safe(event["event"]?.stringValue ?? "?")
        let fields = event.members.filter { $0.key != "event" }.map { member -> String in
            let raw = member.value.stringValue ?? StatusTable.text(member.value)
            return "\(TerminalText.safe(member.key))=\(TerminalText.safe(quoted(raw)))"
        }
        return ([name] + fields).joined(separator: " ")
    }

    /// A value as one shell-like word: as is when it is plain, else in double quotes with `"`
    /// and `\` escaped, so `holder="a cause=x"` cannot be read as two fields.
    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy { !" =\"\\'".unicodeScalars.contains($0) }
        if plain { return value }
        return "\"" + value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}

