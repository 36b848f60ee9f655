/// The release both executables report (`--version`) and the daemon answers in `hello`.
public enum TurnstileVersion {
    public static let current = "0.1.0"
}
