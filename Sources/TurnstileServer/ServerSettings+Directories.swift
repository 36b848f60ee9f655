#if canImport(Glibc)
import Glibc
#endif
import TurnstileCore

extension ServerSettings {
    /// Why the effective state and pause directories (after flags, environment, file and
    /// defaults) cannot be used together, or nil. The config parser checks the file's own
    /// pair; this checks the pair the daemon would really use, relative paths resolved
    /// against the working directory.
    public var directoryConflict: String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let workingDirectory = getcwd(&buffer, buffer.count) != nil ? String(cString: buffer) : nil
        return DirectoryLayout.conflict(state: stateDirectory, pause: pauseDirectory, workingDirectory: workingDirectory)
    }
}
