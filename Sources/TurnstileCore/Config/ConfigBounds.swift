/// The largest value each numeric config key accepts (README, configuration reference).
///
/// A config is operator input, and its numbers reach sums and products (fair shares, deadlines,
/// seconds turned into milliseconds). Each bound is far beyond any real host's needs and small
/// enough that no arithmetic on it can overflow, so a config can never stop the daemon: a value
/// past its bound is refused as `bad_config`, naming the file, line and key.
public enum ConfigBounds {
    /// Permit counts: `global`, `time`, `issue`, project `max`/`max_mention`, model
    /// `concurrency_limit`, the breaker's `threshold`. A product of two stays below 2^40.
    public static let permitsMax = 1_000_000
    /// Connection-scoped counts: `max_connections`, `max_pending_per_connection`,
    /// `max_leases_per_connection`.
    public static let perConnectionMax = 1_000_000
    /// `max_waiters`.
    public static let waitersMax = 10_000_000
    /// `max_output_bytes`: 1 GiB.
    public static let outputBytesMax = 1 << 30
    /// Durations in seconds (`window_secs`, `subscription_limit_ttl_secs`): one year.
    public static let secondsMax = 366 * 86_400
    /// Durations in milliseconds (`priority_aging_ms`): one year.
    public static let millisecondsMax = 366 * 86_400_000
    /// Telemetry counts (`max_models`, `max_events_per_model`, `max_sessions`).
    public static let telemetryCountMax = 10_000_000
}

/// Where the daemon keeps its state and where operators drop pause flags must not overlap so
/// that a pause flag can name a state file: with the pause directory equal to the state
/// directory, `resume state.json` would delete the snapshot. The default layout (`pause`
/// inside the state directory) is fine: every flag file there is a project name.
public enum DirectoryLayout {
    /// Why a state and a pause directory cannot be used together, or nil.
    /// - Parameters:
    ///   - state: the state directory, absolute or relative to `workingDirectory`.
    ///   - pause: the pause directory, the same way.
    ///   - workingDirectory: what relative paths are relative to (nil: compare them as given).
    public static func conflict(state: String, pause: String, workingDirectory: String? = nil) -> String? {
        func normalised(_ path: String) -> String? {
            let absolute = path.hasPrefix("/") || workingDirectory == nil ? path : workingDirectory! + "/" + path
            return Names.normaliseWorkspace(absolute)
        }
        guard let stateDirectory = normalised(state), let pauseDirectory = normalised(pause) else { return nil }
        if stateDirectory == pauseDirectory {
            return "pause_dir and state_dir are the same directory (\(pauseDirectory)): a pause flag could name a state file"
        }
        let prefix = pauseDirectory == "/" ? "/" : pauseDirectory + "/"
        if stateDirectory.hasPrefix(prefix) {
            return "state_dir (\(stateDirectory)) is inside pause_dir (\(pauseDirectory)): a pause flag could name it"
        }
        return nil
    }
}
