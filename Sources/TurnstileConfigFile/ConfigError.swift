import TurnstileCore

/// A config file the daemon refuses, at start or on reload: which file, line and key, and why.
/// Its text is what `reload` answers with `bad_config` and what the daemon prints at start.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file's path as given.
    public var file: String
    /// The 1-based line, where known.
    public var line: Int?
    /// The dotted key, e.g. `limits.global` or `projects[2].max`, where one is to blame.
    public var key: String?
    /// What is wrong.
    public var message: String

    public init(file: String, line: Int? = nil, key: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `turnstile.toml:12: limits.global: must be a whole number ≥ 0 (got -1)`.
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        if let key { text += ": \(key)" }
        return text + ": " + message
    }
}

/// Finds the line a key is written on, for error messages about values that parsed as TOML
/// but mean nothing valid. TOML libraries report positions only for syntax errors, so this
/// walks the text itself: it follows `[table]` and `[[array]]` headers and looks for
/// `key =` inside the right one. It is best effort: a key it cannot place gets its table's
/// header line, or no line at all.
struct ConfigKeyLocator {
    private let lines: [Substring]

    init(_ text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The line of `key` inside `table` (the `index`th entry if `table` is an array of tables),
    /// or of the table's header if `key` is nil or not found.
    func line(table: String?, index: Int? = nil, key: String?) -> Int? {
        var section: String?
        var occurrence = -1
        var headerLine: Int?
        for (number, raw) in lines.enumerated() {
            let line = raw.trimmingWhitespace()
            if line.hasPrefix("[") {
                let isArray = line.hasPrefix("[[")
                let name = line.drop(while: { $0 == "[" }).prefix(while: { $0 != "]" }).trimmingWhitespace()
                section = name
                if name == table {
                    occurrence = isArray ? occurrence + 1 : 0
                    if occurrence == (index ?? 0) { headerLine = number + 1 }
                }
                continue
            }
            let inPlace = section == table && (table == nil || occurrence == (index ?? 0))
            guard inPlace, let key else { continue }
            if line.hasPrefix(key) {
                let rest = line.dropFirst(key.count).trimmingWhitespace()
                if rest.hasPrefix("=") { return number + 1 }
            }
        }
        return headerLine
    }
}
