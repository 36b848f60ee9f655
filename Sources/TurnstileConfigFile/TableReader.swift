import TOMLKit
import TurnstileCore

/// Typed, checked reads from one TOML table, each failure a `ConfigError` that names the key
/// (`projects[1].max`) and its line.
struct TableReader {
    let file: String
    let locator: ConfigKeyLocator
    let table: TOMLTable
    /// The table's name in the file (nil for the root).
    let name: String?
    /// Its index, for an entry of an array of tables.
    let index: Int?

    /// An error about `key` in this table.
    func error(_ key: String?, _ message: String) -> ConfigError {
        var path = name.map { index != nil ? "\($0)[\(index! + 1)]" : $0 }
        if let key { path = path.map { "\($0).\(key)" } ?? key }
        return ConfigError(file: file, line: locator.line(table: name, index: index, key: key), key: path,
                           message: message)
    }

    /// Refuses keys outside `known`.
    func allowOnly(_ known: Set<String>) throws(ConfigError) {
        for key in table.keys.sorted() where !known.contains(key) {
            throw error(key, "unknown key (known here: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// A whole number within bounds, or nil if absent. Every key has an upper bound
    /// (`ConfigBounds`), so that no arithmetic on a config value can overflow.
    func int(_ key: String, min: Int, max: Int) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard value.type == .int, let number = value.int else {
            throw error(key, "must be a whole number (got \(describe(value)))")
        }
        guard number >= min && number <= max else {
            throw error(key, "must be a whole number from \(min) to \(max) (got \(number))")
        }
        return number
    }

    /// A boolean, or nil if absent.
    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard value.type == .bool, let flag = value.bool else { throw error(key, "must be true or false (got \(describe(value)))") }
        return flag
    }

    /// A string, or nil if absent.
    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard value.type == .string, let text = value.string else {
            throw error(key, "must be a string (got \(describe(value)))")
        }
        return text
    }

    /// A non-empty string path, or nil if absent.
    func path(_ key: String) throws(ConfigError) -> String? {
        guard let text = try string(key) else { return nil }
        if text.isEmpty { throw error(key, "must not be empty") }
        return text
    }

    /// A string that must be present.
    func requiredString(_ key: String) throws(ConfigError) -> String {
        guard let text = try string(key) else { throw error(key, "is required") }
        return text
    }

    /// A string or a whole number, as text (a group given by name or id).
    func scalarText(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        if value.type == .int, let number = value.int { return String(number) }
        if value.type == .string, let text = value.string, !text.isEmpty { return text }
        throw error(key, "must be a group name or id (got \(describe(value)))")
    }

    /// An array of strings, empty if absent.
    func strings(_ key: String) throws(ConfigError) -> [String] {
        guard let value = table[key] else { return [] }
        guard value.type == .array, let array = value.array else { throw error(key, "must be an array of strings") }
        var result: [String] = []
        for element in array {
            guard element.type == .string, let text = element.string else { throw error(key, "must be an array of strings") }
            result.append(text)
        }
        return result
    }

    /// An array of user or group ids, empty if absent.
    func ids(_ key: String) throws(ConfigError) -> [UInt32] {
        guard let value = table[key] else { return [] }
        guard value.type == .array, let array = value.array else { throw error(key, "must be an array of ids") }
        var result: [UInt32] = []
        for element in array {
            guard element.type == .int, let number = element.int, let id = UInt32(exactly: number) else {
                throw error(key, "must be an array of non-negative whole numbers")
            }
            result.append(id)
        }
        return result
    }

    /// A sub-table, or nil if absent.
    func table(_ key: String) throws(ConfigError) -> TableReader? {
        guard let value = table[key] else { return nil }
        guard value.type == .table, let sub = value.table else { throw error(key, "must be a table ([\(key)])") }
        return TableReader(file: file, locator: locator, table: sub, name: key, index: nil)
    }

    /// The entries of an array of tables (`[[key]]`), empty if absent.
    func tables(_ key: String) throws(ConfigError) -> [TableReader] {
        guard let value = table[key] else { return [] }
        guard value.type == .array, let array = value.array else { throw error(key, "must be an array of tables ([[\(key)]])") }
        var result: [TableReader] = []
        for (position, element) in array.enumerated() {
            guard element.type == .table, let sub = element.table else {
                throw error(key, "must be an array of tables ([[\(key)]])")
            }
            result.append(TableReader(file: file, locator: locator, table: sub, name: key, index: position))
        }
        return result
    }

    private func describe(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "the string \"\(value.string ?? "")\""
        case .int: "the number \(value.int ?? 0)"
        case .double: "the number \(value.double ?? 0)"
        case .bool: value.bool == true ? "true" : "false"
        case .array: "an array"
        case .table: "a table"
        default: "a date or time"
        }
    }
}
