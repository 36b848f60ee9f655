#if canImport(Glibc)
import Glibc
#endif
import Logging
import TurnstileConfigFile
import TurnstileCore
import TurnstileSession

/// The daemon's answers to the session's questions, from the kernel and the file system.
/// The server owns it; the session keeps it unowned.
final class DaemonHost: SessionHost {
    /// Unchecked: the server owns this host for its whole life.
    private unowned(unsafe) let server: Server

    init(server: Server) {
        self.server = server
    }

    var now: Instant { server.now }
    var wall: WallTime { server.wall }
    var daemonPID: Int32 { getpid() }
    var daemonUID: UInt32 { getuid() }
    var daemonProcessGroup: Int32 { getpgrp() }
    var pauseDirectory: String { server.settings.pauseDirectory }

    func isProcessGone(_ pid: Int32) -> Bool { ProcessWatch.isGone(pid) }
    func isProcessGroupAlive(_ pgid: Int32) -> Bool { ProcessGroups.isAlive(pgid) }
    func processGroupOwner(_ pgid: Int32) -> UInt32? { ProcessGroups.owner(of: pgid) }
    func createPauseFlag(_ project: String) -> String? { server.pauseFlags.create(project) }
    func removePauseFlag(_ project: String) -> String? { server.pauseFlags.remove(project) }
    func pauseFlags() -> [String]? { server.pauseFlags.flags() }

    var clusterTransport: ClusterTransportReport? {
        guard let cluster = server.cluster else { return nil }
        var report = server.clusterMetrics
        report.host = cluster.layout.host
        return report
    }

    /// The config file read again; the default config file, when absent, means the embedded
    /// defaults.
    func loadConfig() -> Result<TurnstileConfig, ConfigLoadFailure> {
        let settings = server.settings
        guard let path = settings.configPath, !settings.configIsOptional || access(path, F_OK) == 0 else {
            server.logger.info("reload: no config file; running on the embedded defaults",
                               metadata: ["file": "\(settings.configPath ?? "-")"])
            return .success(TurnstileConfig())
        }
        switch ConfigFile.load(path) {
        case .failure(let error): return .failure(ConfigLoadFailure(error.description))
        case .success(let loaded):
            if let problem = ClusterLink.reloadProblem(running: server.session.config, new: loaded) {
                return .failure(ConfigLoadFailure("\(path): \(problem)"))
            }
            return .success(loaded)
        }
    }
}
