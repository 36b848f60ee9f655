/// Validation and normalisation of the names clients send: projects, workspaces, providers,
/// tenants. Kept in one place because a project name becomes a file name in the pause
/// directory and a workspace path becomes a lock key: both must be unambiguous.
public enum Names {
    /// The project an acquire belongs to when it names none. It is never paused.
    public static let globalProject = "__global__"

    /// Longest accepted project name, in UTF-8 bytes.
    public static let projectNameBytesMax = 128

    /// Longest accepted provider, tenant, holder or model string, in UTF-8 bytes.
    public static let labelBytesMax = 256

    /// Longest accepted workspace path, in UTF-8 bytes (PATH_MAX).
    public static let workspaceBytesMax = 4096

    /// Checks a project name: it names a file in the pause directory, so it must be a single
    /// path component.
    /// - Returns: nil if valid, else a human reason.
    public static func projectNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "project name is empty" }
        if name.utf8.count > projectNameBytesMax { return "project name is longer than \(projectNameBytesMax) bytes" }
        if name == "." || name == ".." { return "project name cannot be '.' or '..'" }
        if name.utf8.contains(UInt8(ascii: "/")) { return "project name cannot contain '/'" }
        if name.utf8.contains(0) { return "project name cannot contain NUL" }
        if containsControl(name) { return "project name contains control characters" }
        return nil
    }

    /// Checks a provider or tenant name: non-empty, bounded, no control characters.
    /// - Returns: nil if valid, else a human reason.
    public static func labelProblem(_ name: String, what: String) -> String? {
        if name.isEmpty { return "\(what) is empty" }
        if name.utf8.count > labelBytesMax { return "\(what) is longer than \(labelBytesMax) bytes" }
        if containsControl(name) { return "\(what) contains control characters" }
        return nil
    }

    /// Whether a name holds a control character: C0 (U+0000 to U+001F), DEL (U+007F) or C1
    /// (U+0080 to U+009F). Names reach log lines, status tables and file names, where a
    /// newline or an escape sequence could forge or hide output. One pass over the UTF-8
    /// bytes: a C1 character is encoded 0xC2 0x80…0x9F.
    public static func containsControl(_ text: String) -> Bool {
        var afterC2 = false
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x7F || (afterC2 && byte <= 0x9F) { return true }
            afterC2 = byte == 0xC2
        }
        return false
    }

    /// Normalises a workspace path so that spellings of one directory share one lock:
    /// repeated slashes collapse, `.` components vanish, `..` pops a component, and a trailing
    /// slash is dropped (`/a/b/` = `/a//b` = `/a/./b` = `/a/b`). Symlinks are not resolved: the
    /// core does no I/O, and clients are expected to send the path they work in.
    /// - Returns: the normalised path, or nil if it is empty, too long, or holds a control
    ///   character.
    public static func normaliseWorkspace(_ path: String) -> String? {
        if path.isEmpty || path.utf8.count > workspaceBytesMax || containsControl(path) { return nil }
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if let last = parts.last, last != ".." {
                    parts.removeLast()
                } else if !absolute {
                    parts.append(part)
                }
                continue
            }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if absolute { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }
}
