import TurnstileCore
import TurnstileProtocol

/// Typed reads of a request's fields, each failure a `bad_request` naming the field. An
/// absent field and a `null` one are the same: absent.
///
/// It reads either a scanned line (`JSONObjectView`, the daemon's path: scalars are read
/// straight from the line's bytes) or a built object (a nested one, such as `tokens`).
struct FieldReader {
    private let view: JSONObjectView?
    private let object: JSONObject?

    init(object: JSONObject) {
        self.object = object
        view = nil
    }

    init(view: JSONObjectView) {
        self.view = view
        object = nil
    }

    /// A scanned member that is present and not null.
    private func member(_ field: StaticString) -> JSONMember? {
        guard let member = view?.member(field), member.kind != .null else { return nil }
        return member
    }

    func value(_ field: StaticString) -> JSONValue? {
        if let view { return member(field).map(view.value) }
        guard let value = object?[field.description], !value.isNull else { return nil }
        return value
    }

    func fail(_ field: StaticString, _ message: String) -> RequestError {
        RequestError(.badRequest, field: field.description, message)
    }

    /// Fails naming the first field that is neither `op`, `id` nor one of `known` (a typo such
    /// as `projct` is an error, not a silent default). A scanned key is compared as bytes.
    func rejectUnknown(_ known: KnownFields, nested prefix: String = "") throws(RequestError) {
        func isKnown(_ key: UnsafeBufferPointer<UInt8>) -> Bool {
            known.contains(key, prefix: JSONObjectView.prefix(key), topLevel: prefix.isEmpty)
        }
        if let view {
            for member in view.members {
                if member.keyIsPlain {
                    // The scan already made the key's first eight bytes one word: most keys are
                    // matched by their length and that word alone.
                    let key = UnsafeBufferPointer(rebasing: view.bytes[member.key])
                    if known.contains(key, prefix: member.keyPrefix, topLevel: prefix.isEmpty) { continue }
                    throw unknown(prefix + String(decoding: key, as: UTF8.self))
                }
                var name = view.key(member)
                if !name.withUTF8({ isKnown($0) }) { throw unknown(prefix + name) }
            }
        } else if let object {
            for (key, _) in object.members {
                var name = key
                if !name.withUTF8({ isKnown($0) }) { throw unknown(prefix + key) }
            }
        }
    }

    /// An unknown field's error; a long name is cut (the answer echoes it).
    private func unknown(_ field: String) -> RequestError {
        let shown = field.utf8.count <= 64 ? field : String(decoding: field.utf8.prefix(64), as: UTF8.self) + "…"
        return RequestError(.badRequest, field: shown, "unknown field \"\(shown)\" (not one this op takes)")
    }


    /// `op`: unlike other fields, a null one is a wrong type, not an absent one.
    func op() throws(RequestError) -> Op {
        let name: String
        if let view {
            guard let member = view.member("op") else { throw fail("op", "op is required") }
            guard member.kind == .string else { throw fail("op", "op must be a string, not \(member.kind.typeName)") }
            if let plain = view.plainString(member), let op = Op(utf8: plain) { return op }
            name = view.string(member)
        } else {
            guard let value = object?["op"] else { throw fail("op", "op is required") }
            guard let text = value.stringValue else { throw fail("op", "op must be a string, not \(value.typeName)") }
            name = text
        }
        guard let op = Op(rawValue: name) else {
            throw RequestError(.unknownOp, "unknown op \"\(name)\" (known: \(Op.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return op
    }

    func string(_ field: StaticString) throws(RequestError) -> String? {
        if let view {
            guard let member = member(field) else { return nil }
            guard member.kind == .string else { throw fail(field, "\(field) must be a string, not \(member.kind.typeName)") }
            return view.string(member)
        }
        guard let value = value(field) else { return nil }
        guard let text = value.stringValue else { throw fail(field, "\(field) must be a string, not \(value.typeName)") }
        return text
    }

    /// A number field as its text.
    private func number(_ field: StaticString) throws(RequestError) -> JSONNumber? {
        if let view {
            guard let member = member(field) else { return nil }
            guard member.kind == .number else { throw fail(field, "\(field) must be a number, not \(member.kind.typeName)") }
            return view.number(member)
        }
        guard let value = value(field) else { return nil }
        guard let number = value.numberValue else { throw fail(field, "\(field) must be a number, not \(value.typeName)") }
        return number
    }

    func requiredString(_ field: StaticString) throws(RequestError) -> String {
        guard let text = try string(field) else { throw fail(field, "\(field) is required") }
        return text
    }

    /// A bounded, control-free label (holder, agent, tenant, provider, session).
    func label(_ field: StaticString) throws(RequestError) -> String? {
        guard let text = try string(field) else { return nil }
        if let problem = Names.labelProblem(text, what: field.description) { throw fail(field, problem) }
        return text
    }

    func requiredLabel(_ field: StaticString) throws(RequestError) -> String {
        guard let text = try label(field) else { throw fail(field, "\(field) is required") }
        return text
    }

    func bool(_ field: StaticString) throws(RequestError) -> Bool? {
        if let view {
            guard let member = member(field) else { return nil }
            guard member.kind == .bool else { throw fail(field, "\(field) must be true or false, not \(member.kind.typeName)") }
            return view.bool(member)
        }
        guard let value = value(field) else { return nil }
        guard let flag = value.boolValue else { throw fail(field, "\(field) must be true or false, not \(value.typeName)") }
        return flag
    }

    func requiredBool(_ field: StaticString) throws(RequestError) -> Bool {
        guard let flag = try bool(field) else { throw fail(field, "\(field) is required") }
        return flag
    }

    /// A whole number within `range`.
    func integer(_ field: StaticString, in range: ClosedRange<Int64>) throws(RequestError) -> Int64? {
        guard let number = try number(field) else { return nil }
        guard let int = number.int64 else { throw fail(field, "\(field) must be a whole number (got \(number.text))") }
        guard range.contains(int) else {
            throw fail(field, "\(field) must be from \(range.lowerBound) to \(range.upperBound) (got \(int))")
        }
        return int
    }

    /// A non-negative whole number of milliseconds, however written (`1000`, `1e3`, `1000.0`);
    /// one beyond 64 bits means "forever".
    func milliseconds(_ field: StaticString) throws(RequestError) -> UInt64? {
        guard let number = try number(field) else { return nil }
        if let int = number.uint64 { return int }
        guard let double = number.double, double >= 0 else {
            throw fail(field, "\(field) must not be negative (got \(number.text))")
        }
        guard double.rounded() == double else {
            throw fail(field, "\(field) must be a whole number of milliseconds (got \(number.text))")
        }
        return double >= 0x1p64 ? UInt64.max : UInt64(double)
    }

    func double(_ field: StaticString) throws(RequestError) -> Double? {
        guard let number = try number(field) else { return nil }
        guard let double = number.double, double.isFinite else { throw fail(field, "\(field) must be a finite number") }
        return double
    }

    /// A lease token: 32 hex digits.
    func token(_ field: StaticString) throws(RequestError) -> LeaseToken? {
        if let view, let member = member(field), let plain = view.plainString(member) {
            guard let token = LeaseToken(hexUTF8: plain) else { throw fail(field, "\(field) is not a lease token (32 hex digits)") }
            return token
        }
        guard let text = try string(field) else { return nil }
        guard let token = LeaseToken(hex: text) else { throw fail(field, "\(field) is not a lease token (32 hex digits)") }
        return token
    }

    func requiredToken(_ field: StaticString) throws(RequestError) -> LeaseToken {
        guard let token = try token(field) else { throw fail(field, "\(field) is required") }
        return token
    }

    /// A list given as an array of strings or a comma-separated string.
    func list(_ field: StaticString) throws(RequestError) -> [String]? {
        guard let value = value(field) else { return nil }
        if let text = value.stringValue {
            return text.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
        }
        guard let array = value.arrayValue else {
            throw fail(field, "\(field) must be an array of strings or a comma-separated string")
        }
        return array.compactMap(\.stringValue)
    }

    /// A list (as `list`) whose entries may not hold control characters; empty if absent.
    func labels(_ field: StaticString) throws(RequestError) -> [String] {
        let entries = try list(field) ?? []
        if entries.contains(where: Names.containsControl) { throw fail(field, "\(field) contains control characters") }
        return entries
    }

    /// A project name (the pause directory's file names), defaulting to `__global__`.
    func project(_ field: StaticString = "project", required: Bool = false) throws(RequestError) -> String {
        guard let name = try string(field) else {
            if required { throw fail(field, "\(field) is required") }
            return Names.globalProject
        }
        if let problem = Names.projectNameProblem(name) { throw fail(field, problem) }
        return name
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    var trimmed: String {
        var slice = Substring(self)
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
