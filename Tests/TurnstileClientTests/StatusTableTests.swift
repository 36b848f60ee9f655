import Testing
import TurnstileClient
import TurnstileProtocol

/// The `turnstile status` table, rendered from a fixed status answer and compared with the
/// expected text, and the duration syntax of the CLI.
@Suite("Status table and durations")
struct StatusTableTests {
    static let status = #"""
        {"id":1,"ok":true,"server":{"version":"0.1.0","pid":4242,"uptime_ms":7384000,"connections":3,"watchers":1},
         "fairness":"round_robin","global":{"limit":8,"in_use":3,"waiting":1},
         "modes":{"time":{"limit":3,"in_use":1},"issue":{"limit":2,"in_use":2},"mention":{"limit":null,"in_use":0},"any":{"limit":null,"in_use":0}},
         "projects":{"alpha":{"limit":2,"in_use":2,"mention_limit":1,"mention_in_use":0,"paused":false,"failures":0},
                     "beta":{"limit":null,"in_use":1,"mention_limit":null,"mention_in_use":0,"paused":true,"failures":3}},
         "paused":["beta"],
         "models":{"anthropic/claude-opus-4":{"limit":2,"in_use":1,"tier":"premium","tools":true,"subscription_limited":false},
                   "zai/glm-5":{"limit":3,"in_use":0,"tier":"premium","tools":true,"subscription_limited":true,"limited_for_ms":754000}},
         "workspaces":[{"path":"/src/app","fence":12,"parked":false}],
         "throttles":[{"provider":"openai","tenant":"local","retry_after_ms":32000}],
         "leases":[{"fence":12,"project":"alpha","mode":"issue","model":"anthropic/claude-opus-4","route":"primary","workspace":"/src/app","tenant":"local","holder":"agent-1","pid":4711,"age_ms":192000,"since_heartbeat_ms":4000,"expires_in_ms":26000,"bound":true,"parked":false},
                   {"fence":13,"project":"alpha","mode":"issue","model":null,"route":null,"workspace":null,"tenant":"local","holder":null,"pid":null,"age_ms":850,"since_heartbeat_ms":850,"expires_in_ms":29150,"bound":false,"parked":true}],
         "waiting":[{"project":"alpha","mode":"time","model":null,"workspace":null,"holder":"cron-3","priority":0,"reason":"project","waited_ms":41000,"position":1,"unpark":false}],
         "metrics":{"admitted_total":40,"completed_total":37,"released_total":30,"expired_total":2,"reclaimed_total":5,"revoked_total":0,"refused_total":1,"timed_out_total":0,"avg_wait_ms":120,"p95_wait_ms":900,"queued_by_reason":{"project":1}}}
        """#

    static let expected = """
        turnstiled 0.1.0 (pid 4242, up 2h03m) · fairness round_robin
        PERMITS   3/8 in use · 1 waiting
        MODES     time 1/3 · issue 2/2 · mention 0 · any 0
        PROJECTS
          PROJECT  IN USE  MENTION  PAUSED  FAILURES
          alpha    2/2     0/1      -       0
          beta     1/-     0/-      paused  3
        MODELS
          MODEL                    IN USE  TIER     TOOLS  SUBSCRIPTION
          anthropic/claude-opus-4  1/2     premium  yes    ok
          zai/glm-5                0/3     premium  yes    limited 12m34s
        LEASES
          FENCE  PROJECT  MODE   MODEL                    HOLDER   PID   AGE    HEARTBEAT  EXPIRES  STATE
          12     alpha    issue  anthropic/claude-opus-4  agent-1  4711  3m12s  4s ago     in 26s   bound
          13     alpha    issue  -                        -        -     850ms  850ms ago  in 29s   detached,parked
        WAITING   1 · by reason: project 1 · by mode: time 1 · by project: alpha 1
          POS  PROJECT  MODE  MODEL  HOLDER  PRIORITY  REASON   WAITED
          1    alpha    time  -      cron-3  0         project  41s
        THROTTLES
          openai for tenant local: 32s left
        PAUSED    beta

        """

    @Test func rendersTheGoldenTable() throws {
        let object = try #require(try JSONParser.parse(Self.status).objectValue)
        let rendered = StatusTable.render(object)
        #expect(rendered == Self.expected, "\n\(rendered)")
    }

    @Test func anIdleDaemonRendersBriefly() throws {
        let object = try #require(try JSONParser.parse(#"{"ok":true,"global":{"limit":8,"in_use":0,"waiting":0},"leases":[]}"#).objectValue)
        let rendered = StatusTable.render(object)
        #expect(rendered.contains("PERMITS   0/8 in use · 0 waiting"))
        #expect(rendered.contains("LEASES    none"))
        #expect(!rendered.contains("WAITING") && !rendered.contains("THROTTLES"))
    }

    @Test func aGroupLeaseShowsItsGroupAndADrainingOneSaysSo() throws {
        let object = try #require(try JSONParser.parse(#"""
            {"ok":true,"global":{"limit":1,"in_use":1,"waiting":0},"leases":[
             {"fence":3,"project":"__global__","mode":"any","model":null,"holder":"job","pid":null,"pgid":4242,
              "age_ms":5000,"since_heartbeat_ms":5000,"expires_in_ms":0,"bound":false,"parked":false,
              "draining":"disconnected","draining_ms":1200}]}
            """#).objectValue)
        let rendered = StatusTable.render(object)
        #expect(rendered.contains("-4242"), "\(rendered)")
        #expect(rendered.contains("draining (disconnected, group 4242, 1s)"), "\(rendered)")
        #expect(!rendered.contains("in 0ms"), "a draining lease expires no more")
    }

    @Test func poolsShowTheirUseWaitersAndHolders() throws {
        let object = try #require(try JSONParser.parse(#"""
            {"ok":true,"global":{"limit":8,"in_use":2,"waiting":1},
             "pools":{"gpu":{"limit":1,"in_use":1,"waiting":1,"ad_hoc":false},"build":{"limit":3,"in_use":1,"waiting":0,"ad_hoc":true}},
             "leases":[{"fence":1,"project":"__global__","mode":"any","model":null,"holder":"trainer","pid":7,
                        "age_ms":5000,"since_heartbeat_ms":5000,"expires_in_ms":25000,"bound":true,"parked":false,"pools":["gpu","build"]},
                       {"fence":2,"project":"__global__","mode":"any","model":null,"holder":"other","pid":8,
                        "age_ms":5000,"since_heartbeat_ms":5000,"expires_in_ms":25000,"bound":true,"parked":false}]}
            """#).objectValue)
        let rendered = StatusTable.render(object)
        #expect(rendered.contains("POOLS     gpu 1/1 +1 waiting · build 1/3 (ad hoc)"), "\(rendered)")
        #expect(rendered.contains("HEARTBEAT  EXPIRES  POOLS      STATE"), "\(rendered)")
        #expect(rendered.contains("gpu,build  bound"), "\(rendered)")
        let event = try #require(try JSONParser.parse(#"{"event":"granted","fence":1,"pools":["gpu","build"]}"#).objectValue)
        #expect(EventLine.render(event) == "granted fence=1 pools=gpu,build")
    }

    @Test func watchEventsAreOneLineEach() throws {
        let event = try #require(try JSONParser.parse(#"{"event":"granted","fence":7,"project":"alpha","mode":"issue","model":null,"holder":"h"}"#).objectValue)
        #expect(EventLine.render(event) == "granted fence=7 project=alpha mode=issue model=- holder=h")
    }

    @Test(arguments: [("300ms", 300), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("30", 30_000),
                      ("1.5s", 1500), ("0", 0), ("2M", 120_000)] as [(String, UInt64)])
    func durationsParse(text: String, milliseconds: UInt64) {
        #expect(Durations.milliseconds(text) == milliseconds)
    }

    @Test(arguments: ["", "s", "fast", "-1s", "1d", "1e3", "ms"])
    func nonDurationsDoNot(text: String) {
        #expect(Durations.milliseconds(text) == nil)
    }

    @Test func durationsDescribeThemselves() {
        #expect(Durations.describe(milliseconds: 850) == "850ms")
        #expect(Durations.describe(milliseconds: 12_000) == "12s")
        #expect(Durations.describe(milliseconds: 192_000) == "3m12s")
        #expect(Durations.describe(milliseconds: 7_384_000) == "2h03m")
    }

    @Test func controlCharactersFromTheDaemonAreEscapedNotPrinted() throws {
        let hostile = #"""
            {"ok":true,"global":{"limit":1,"in_use":1,"waiting":0},"projects":{"a\u001b[2Jb":{"limit":null,"in_use":1}},
             "paused":["p\u009bq"],"leases":[{"fence":1,"project":"a\u001b[2Jb","holder":"h\u0007\r\n\u007f","mode":"any"}]}
            """#
        let table = StatusTable.render(try #require(try JSONParser.parse(Array(hostile.utf8)).objectValue))
        #expect(!table.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x7F || $0.value == 0x9B || $0.value == 0x0D })
        #expect(table.contains(#"a\x1B[2Jb"#))
        #expect(table.contains(#"h\x07\x0D\x0A\x7F"#))
        #expect(table.contains(#"p\x9Bq"#))
        let event = EventLine.render(try #require(try JSONParser.parse(Array(#"{"event":"granted","holder":"x\u001b]0;pwned\u0007"}"#.utf8)).objectValue))
        #expect(event == #"granted holder=x\x1B]0;pwned\x07"#)
    }

    @Test func watchLinesQuoteValuesThatCouldReadAsTwoFields() throws {
        let event = try #require(try JSONParser.parse(Array(#"{"event":"released","fence":3,"holder":"a cause=x","project":"p\"q","cause":"released"}"#.utf8)).objectValue)
        #expect(EventLine.render(event) == #"released fence=3 holder="a cause=x" project="p\"q" cause=released"#)
    }

    @Test func theWaitingSummaryCountsByReasonModeAndProjectAndFiltersTheLists() throws {
        func waiter(_ project: String, _ mode: String, _ reason: String) -> String {
            #"{"project":"\#(project)","mode":"\#(mode)","reason":"\#(reason)","position":1,"waited_ms":5}"#
        }
        let waiting = [waiter("a", "time", "global"), waiter("a", "issue", "global"), waiter("b", "time", "workspace_lock")]
        let text = #"{"ok":true,"global":{"limit":1,"in_use":1,"waiting":3},"leases":[{"fence":1,"project":"b","mode":"any"}],"waiting":["# + waiting.joined(separator: ",") + "]}"
        let status = try #require(try JSONParser.parse(Array(text.utf8)).objectValue)
        let all = StatusTable.render(status)
        #expect(all.contains("WAITING   3 · by reason: global 2, workspace_lock 1 · by mode: time 2, issue 1 · by project: a 2, b 1"), "\(all)")
        let onlyA = StatusTable.render(status, filter: .init(project: "a", waitingOnly: true))
        #expect(!onlyA.contains("LEASES"))
        #expect(onlyA.contains("WAITING   3 ·"), "the summary counts every waiter")
        #expect(onlyA.split(separator: "\n").filter { $0.hasPrefix("  1 ") }.count == 2, "\(onlyA)")
        #expect(!onlyA.contains("workspace_lock  "), "b's waiter is not listed")
    }
}
