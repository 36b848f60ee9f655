import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// Pauses shared across the fleet (`shared = [..., "pauses"]`, protocol/CLUSTER.md §4a):
/// pausing a project on one host, by the op or by hand, pauses it on every host (each host's
/// pause flag appears), resuming it on any host resumes it everywhere, and a daemon that joins
/// later takes the fleet's pauses on.
@Suite("Shared pauses through etcd", .serialized, .enabled(if: EtcdFleet.available, EtcdFleet.missing),
       .timeLimit(.minutes(2)))
struct SharedPauseTests {
    static let body = "[limits]\nglobal = 10\n"
    static let shared = "\"models\", \"pauses\""

    static func flagged(_ daemon: Daemon, _ project: String) -> Bool {
        FileManager.default.fileExists(atPath: daemon.pauseDirectory + "/" + project)
    }

    static func refusal(_ daemon: Daemon, project: String) throws -> String? {
        let answer = try daemon.client().ask("acquire", [("project", .string(project)), ("mode", .string("issue"))])
        return answer.ok ? nil : answer.string("reason")
    }

    @Test func aPauseOnOneHostPausesEveryHostAndAResumeAnywhereLiftsIt() throws {
        let fleet = try EtcdFleet()
        defer { fleet.stop() }
        let one = try fleet.startDaemon(host: "h1", body: Self.body, shared: Self.shared)
        let two = try fleet.startDaemon(host: "h2", body: Self.body, shared: Self.shared)

        #expect(try one.client().ask("pause", [("project", .string("alpha"))]).ok)
        #expect(SharedLimitTests.eventuallyTrue { Self.flagged(two, "alpha") }, "h2's pause flag appears")
        #expect(try SharedLimitTests.eventuallyTrue { try Self.refusal(two, project: "alpha") == "paused" })
        #expect(try Self.refusal(two, project: "beta") == nil, "other projects run")

        #expect(try two.client().ask("resume", [("project", .string("alpha"))]).ok)
        #expect(SharedLimitTests.eventuallyTrue { !Self.flagged(one, "alpha") }, "h1's flag goes")
        #expect(try SharedLimitTests.eventuallyTrue { try Self.refusal(one, project: "alpha") == nil })

        // A flag created by hand on h2 pauses h1 too; removed by hand on h1, it is lifted on h2.
        FileManager.default.createFile(atPath: two.pauseDirectory + "/gamma", contents: nil)
        #expect(try SharedLimitTests.eventuallyTrue { try Self.refusal(one, project: "gamma") == "paused" })
        try FileManager.default.removeItem(atPath: one.pauseDirectory + "/gamma")
        #expect(SharedLimitTests.eventuallyTrue { !Self.flagged(two, "gamma") })
        #expect(try SharedLimitTests.eventuallyTrue { try Self.refusal(two, project: "gamma") == nil })

        // A daemon that joins later takes the fleet's pauses on.
        #expect(try one.client().ask("pause", [("project", .string("delta"))]).ok)
        #expect(SharedLimitTests.eventuallyTrue { Self.flagged(two, "delta") })
        let three = try fleet.startDaemon(host: "h3", body: Self.body, shared: Self.shared)
        #expect(try SharedLimitTests.eventuallyTrue { try Self.refusal(three, project: "delta") == "paused" })
        #expect(Self.flagged(three, "delta"))
    }
}
