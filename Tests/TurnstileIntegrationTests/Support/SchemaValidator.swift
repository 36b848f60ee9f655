import TurnstileProtocol

/// Checks a JSON value against a JSON Schema written in the small subset `protocol/schema/`
/// uses: `type`, `properties`, `required`, `enum`, `const`, `items`, `minimum`, `maximum`,
/// `additionalProperties` (boolean). Anything else in a schema is reported, so the subset
/// cannot grow unnoticed.
struct SchemaValidator {
    static let known: Set<String> = ["type", "properties", "required", "enum", "const", "items", "minimum", "maximum",
                                     "additionalProperties", "description", "title", "$schema", "$id"]

    /// The problems with `value` (empty when it conforms).
    static func problems(_ value: JSONValue, _ schema: JSONObject, at path: String = "$") -> [String] {
        var problems: [String] = []
        for member in schema.members where !known.contains(member.key) {
            problems.append("\(path): schema keyword \(member.key) is outside the supported subset")
        }
        if let type = schema["type"], !matches(value, type) {
            return problems + ["\(path): expected \(describe(type)), got \(value.typeName)"]
        }
        if let constant = schema["const"], !equal(value, constant) { problems.append("\(path): expected the constant \(constant)") }
        if let options = schema["enum"]?.arrayValue, !options.contains(where: { equal(value, $0) }) {
            problems.append("\(path): \(value) is not one of the allowed values")
        }
        if let number = value.numberValue?.double {
            if let minimum = schema["minimum"]?.numberValue?.double, number < minimum { problems.append("\(path): below \(minimum)") }
            if let maximum = schema["maximum"]?.numberValue?.double, number > maximum { problems.append("\(path): above \(maximum)") }
        }
        if case .object(let object) = value {
            let properties = schema["properties"]?.objectValue ?? JSONObject()
            for required in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where object[required] == nil {
                problems.append("\(path): missing required \(required)")
            }
            for member in object.members {
                if let sub = properties[member.key]?.objectValue {
                    problems += Self.problems(member.value, sub, at: "\(path).\(member.key)")
                } else if schema["additionalProperties"]?.boolValue == false {
                    problems.append("\(path): unexpected property \(member.key)")
                }
            }
        }
        if case .array(let elements) = value, let items = schema["items"]?.objectValue {
            for (index, element) in elements.enumerated() { problems += Self.problems(element, items, at: "\(path)[\(index)]") }
        }
        return problems
    }

    private static func matches(_ value: JSONValue, _ type: JSONValue) -> Bool {
        let names = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue ?? ""]
        return names.contains { name in
            switch (name, value) {
            case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object): true
            case ("number", .number): true
            case ("integer", .number(let number)): number.int64 != nil || number.uint64 != nil
            default: false
            }
        }
    }

    private static func describe(_ type: JSONValue) -> String {
        type.arrayValue?.compactMap(\.stringValue).joined(separator: " or ") ?? type.stringValue ?? "?"
    }

    /// JSON equality, numbers by value.
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)): x.text == y.text || (x.double != nil && x.double == y.double)
        case (.array(let x), .array(let y)): x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .object(let y)):
            x.members.count == y.members.count && x.members.allSatisfy { member in y[member.key].map { equal(member.value, $0) } ?? false }
        default: a == b
        }
    }
}
