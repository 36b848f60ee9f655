import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// The chaos test: many real client processes acquiring across projects, modes and
/// models while random ones are SIGKILLed and replaced, and then the daemon itself SIGKILLed
/// and restarted, with a monitor polling `status` for any limit exceeded.
@Suite("Chaos", .timeLimit(.minutes(2)))
struct ChaosTests {
    static let config = """
        [limits]
        global = 6
        time = 2
        issue = 2
        [[projects]]
        name = "alpha"
        max = 2
        [[projects]]
        name = "beta"
        max = 3
        max_mention = 1
        [[models]]
        name = "a/x"
        concurrency_limit = 2
        [[models]]
        name = "b/y"
        concurrency_limit = 2
        """

    static let limits: [String: Int64] = [
        "global": 6, "mode.time": 2, "mode.issue": 2, "project.alpha": 2, "project.beta": 3,
        "mention.beta": 1, "model.a/x": 2, "model.b/y": 2,
    ]

    static func client(_ daemon: Daemon, _ name: String, _ role: String) throws -> ChildProcess {
        try ChildProcess(["/usr/bin/python3", "-c", ChaosClient.script, daemon.socketPath, name, role])
    }

    @Test func killingClientsNeverLetsALimitBeExceededAndEverySlotComesBack() throws {
        let daemon = try Daemon(config: Self.config)
        let monitor = LimitMonitor(socketPath: daemon.socketPath, limits: Self.limits)
        var clients = try (0..<24).map { try Self.client(daemon, "churn-\($0)", "churn") }
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for round in 0..<40 {
            let index = Int.random(in: 0..<clients.count, using: &generator)
            // Kill only a client that holds or has held a permit (it has printed a grant).
            guard clients[index].waitForOutput("GRANT", milliseconds: 3000) else { continue }
            clients[index].signal(SIGKILL)
            _ = clients[index].waitForExit()
            kills += 1
            clients[index] = try Self.client(daemon, "churn-\(clients.count + round)", "churn")
        }
        for client in clients { client.signal(SIGKILL) }
        for client in clients { _ = client.waitForExit() }
        let settled = try monitor.waitUntilIdle()
        let report = monitor.stop()
        #expect(kills >= 30, "the clients were granted and killed")
        #expect(report.polls >= 20, "the monitor watched throughout (\(report.polls) polls)")
        #expect(report.violations.isEmpty, "\(report.violations.prefix(5))")
        #expect(report.peak["global"] == 6, "the limit was reached (the test had contention)")
        #expect(settled, "every slot came back once every holder was gone")
    }

    @Test func aDaemonKilledMidRunRestoresItsHoldersWithoutOvergranting() throws {
        let daemon = try Daemon(config: Self.config)
        let monitor = LimitMonitor(socketPath: daemon.socketPath, limits: Self.limits)
        let holders = try (0..<4).map { try Self.client(daemon, "holder-\($0)", "hold") }
        var churners = try (0..<16).map { try Self.client(daemon, "churn-\($0)", "churn") }
        for holder in holders { #expect(holder.waitForOutput("GRANTED", milliseconds: 10_000), "\(holder.output)") }
        let fences = holders.map { $0.output.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "" }
        // Mid-run: churners are acquiring and releasing across every dimension right now.
        for churner in churners { #expect(churner.waitForOutput("GRANT", milliseconds: 10_000)) }
        daemon.crash()
        try daemon.start()
        for (holder, fence) in zip(holders, fences) {
            #expect(holder.waitForOutput("KEPT \(fence)"), "a surviving holder keeps its lease: \(holder.output)")
        }
        #expect(!holders.contains { $0.output.contains("LOST") })
        // The churners go on against the restarted daemon; half are killed and replaced, and
        // the new ones are granted too.
        for index in 0..<8 {
            churners[index].signal(SIGKILL)
            _ = churners[index].waitForExit()
            churners[index] = try Self.client(daemon, "churn-again-\(index)", "churn")
        }
        for churner in churners.prefix(8) { #expect(churner.waitForOutput("GRANT", milliseconds: 10_000)) }
        for process in holders + churners { process.signal(SIGKILL) }
        for process in holders + churners { _ = process.waitForExit() }
        let settled = try monitor.waitUntilIdle()
        let report = monitor.stop()
        #expect(report.violations.isEmpty, "no limit exceeded, before or after the restart: \(report.violations.prefix(5))")
        #expect(report.peak["global"] == 6, "the limit was reached")
        #expect(settled, "every slot came back (restored leases of dead holders expired)")
    }
}

/// Polls `status` on its own connection (reconnecting across daemon restarts) and records any
/// dimension whose use exceeds its limit.
final class LimitMonitor: @unchecked Sendable {
    struct Report {
        var polls = 0
        var violations: [String] = []
        var peak: [String: Int64] = [:]
    }

    private let socketPath: String
    private let limits: [String: Int64]
    private let lock = NSLock()
    private var report = Report()
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init(socketPath: String, limits: [String: Int64]) {
        self.socketPath = socketPath
        self.limits = limits
        Thread.detachNewThread { [self] in loop() }
    }

    private func loop() {
        var client: TurnstileClient?
        while lock.withLock({ running }) {
            do {
                if client == nil { client = try TurnstileClient(socketPath: socketPath) }
                let status = try client!.call("status", timeoutMilliseconds: 5000)
                record(status.object)
            } catch {
                client = nil
            }
        }
        done.signal()
    }

    private func record(_ status: JSONObject) {
        var uses: [String: Int64?] = [:]
        uses["global"] = status["global"]?.objectValue?["in_use"]?.numberValue?.int64
        for member in status["modes"]?.objectValue?.members ?? [] {
            uses["mode.\(member.key)"] = member.value.objectValue?["in_use"]?.numberValue?.int64
        }
        for member in status["projects"]?.objectValue?.members ?? [] {
            uses["project.\(member.key)"] = member.value.objectValue?["in_use"]?.numberValue?.int64
            uses["mention.\(member.key)"] = member.value.objectValue?["mention_in_use"]?.numberValue?.int64
        }
        for member in status["models"]?.objectValue?.members ?? [] {
            uses["model.\(member.key)"] = member.value.objectValue?["in_use"]?.numberValue?.int64
        }
        lock.withLock {
            report.polls += 1
            for (name, use) in uses {
                guard let use else { continue }
                report.peak[name] = max(report.peak[name] ?? 0, use)
                if let limit = limits[name], use > limit { report.violations.append("\(name) at \(use) > \(limit)") }
            }
        }
    }

    /// Polls until nothing is held or waiting, for up to 15 seconds (restored leases of dead
    /// holders take their ttl to expire).
    func waitUntilIdle() throws -> Bool {
        let client = try TurnstileClient(socketPath: socketPath)
        let deadline = SocketStream.monotonicMilliseconds() + 15_000
        while SocketStream.monotonicMilliseconds() < deadline {
            let global = try client.call("status", timeoutMilliseconds: 5000)["global"]?.objectValue
            if global?["in_use"]?.numberValue?.int64 == 0 && global?["waiting"]?.numberValue?.int64 == 0 { return true }
            var nothing = pollfd(fd: -1, events: 0, revents: 0)
            _ = poll(&nothing, 1, 5)
        }
        return false
    }

    /// Stops polling and returns what was seen.
    func stop() -> Report {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { report }
    }
}
