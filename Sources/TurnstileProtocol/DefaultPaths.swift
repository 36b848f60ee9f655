#if canImport(Glibc)
import Glibc
#endif

/// Where the daemon and its clients look by default (README, "The CLI"), in one place so both agree.
public enum DefaultPaths {
    /// `$TURNSTILE_SOCKET`, else `$XDG_RUNTIME_DIR/turnstile.sock`, else
    /// `/tmp/turnstile-<uid>/turnstile.sock`.
    public static func socket(_ environment: [String: String]) -> String {
        if let named = environment["TURNSTILE_SOCKET"], !named.isEmpty { return named }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/turnstile.sock" }
        return "/tmp/turnstile-\(getuid())/turnstile.sock"
    }

    /// `$XDG_STATE_HOME/turnstile`, else `~/.local/state/turnstile`.
    public static func stateDirectory(_ environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty { return state + "/turnstile" }
        return (environment["HOME"] ?? "/tmp") + "/.local/state/turnstile"
    }

    /// `$XDG_CONFIG_HOME/turnstile/turnstile.toml`, else `~/.config/turnstile/turnstile.toml`.
    public static func configFile(_ environment: [String: String]) -> String {
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty { return config + "/turnstile/turnstile.toml" }
        return (environment["HOME"] ?? "/tmp") + "/.config/turnstile/turnstile.toml"
    }

    /// The process environment as a dictionary.
    public static func processEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return environment
    }
}
