#if canImport(Glibc)
import Glibc
#endif
import TurnstileConfigFile
import TurnstileCore

/// Reads and parses the config file (the core parses; reading the file is the shell's job).
public enum ConfigFile {
    /// Largest config file read: far beyond any real one, small enough to never hurt.
    static let bytesMax = 4 << 20

    /// Loads a config file.
    public static func load(_ path: String) -> Result<TurnstileConfig, ConfigError> {
        switch readFile(path, bytesMax: bytesMax) {
        case .failure(let failure): return .failure(ConfigError(file: path, message: failure.description))
        case .success(let bytes):
            guard let text = String(validating: bytes, as: UTF8.self) else {
                return .failure(ConfigError(file: path, message: "not UTF-8 text"))
            }
            do {
                return .success(try ConfigParser.parse(text, file: path))
            } catch {
                return .failure(error)
            }
        }
    }
}

/// Reads a whole file.
/// - Returns: its bytes, or a human reason it could not be read.
func readFile(_ path: String, bytesMax: Int) -> Result<[UInt8], ReadFailure> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(ReadFailure(errno: errno)) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            return .failure(ReadFailure(errno: errno))
        }
        if count == 0 { return .success(bytes) }
        bytes.append(contentsOf: chunk[0..<count])
        if bytes.count > bytesMax { return .failure(ReadFailure(message: "larger than \(bytesMax) bytes")) }
    }
}

/// Why a file could not be read, in words.
struct ReadFailure: Error, CustomStringConvertible {
    let message: String
    /// Whether the file does not exist.
    var missing = false

    init(message: String) {
        self.message = message
    }

    init(errno code: Int32) {
        message = String(cString: strerror(code))
        missing = code == ENOENT
    }

    var description: String { message }
}
