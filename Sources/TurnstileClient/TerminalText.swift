/// Text from the daemon made safe to print on a terminal: control characters (C0, DEL, C1)
/// are written as `\xNN` escapes. Names that reach a daemon are refused if they hold one, but
/// a terminal must never take a byte the daemon sent for a command (an ESC sequence can move
/// the cursor, rewrite lines, set the window title), whichever daemon sent it.
public enum TerminalText {
    /// The string with every control character escaped.
    public static func safe(_ string: String) -> String {
        guard string.unicodeScalars.contains(where: isControl) else { return string }
        var out = ""
        for scalar in string.unicodeScalars {
            if isControl(scalar) {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}
