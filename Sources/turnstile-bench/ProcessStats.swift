#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about a server process: CPU time, memory, open descriptors.
enum ProcessStats {
    /// User+system CPU seconds, from /proc/<pid>/stat.
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = firstLine("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// This process's own user+system CPU seconds (a client near a whole core is the limit, not the server).
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Resident memory (VmRSS), in bytes.
    static func residentBytes(_ pid: Int32) -> Int { statusKibibytes(pid, "VmRSS:") * 1024 }

    /// Peak resident memory (VmHWM), in bytes.
    static func peakResidentBytes(_ pid: Int32) -> Int { statusKibibytes(pid, "VmHWM:") * 1024 }

    /// Open file descriptors (entries of /proc/<pid>/fd).
    static func descriptorCount(_ pid: Int32) -> Int {
        guard let directory = opendir("/proc/\(pid)/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != CChar(UInt8(ascii: ".")) { count += 1 }
        }
        return count
    }

    private static func statusKibibytes(_ pid: Int32, _ key: String) -> Int {
        guard let file = fopen("/proc/\(pid)/status", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix(key) { return Int(text.split(separator: " ").dropFirst().first ?? "0") ?? 0 }
        }
        return 0
    }

    private static func firstLine(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        return String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
