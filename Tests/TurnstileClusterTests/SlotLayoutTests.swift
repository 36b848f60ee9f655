import Testing
@testable import TurnstileCluster

/// The fleet's key layout (protocol/CLUSTER.md §2): every daemon writes and reads it, so what
/// one writes another must read back exactly, and what no daemon writes must not be mistaken
/// for a slot.
@Suite("Slot layout")
struct SlotLayoutTests {
    let layout = SlotLayout(prefix: "/turnstile/fleet-a/", host: "builder-3")

    @Test func aSlotWhoseValueNoDaemonWritesStillCountsAsTakenUnderTheUnitItsKeyNames() {
        let key = layout.slotKey(kind: "models", name: "fake/opus", index: 7)
        #expect(layout.takenSlot(key: key, value: Array("garbage".utf8))
            == SlotLayout.Slot(kind: "models", name: "fake/opus", index: 7, host: "", fence: 0))
        #expect(layout.takenSlot(key: key, value: layout.slotValue(fence: 3)).host == "builder-3")
        #expect(layout.takenSlot(key: layout.prefix + "slots/models/fake%2Fopus/07", value: []) == .unreadable,
                "a key naming no unit (a leading zero) is taken by no unit")
        #expect(layout.takenSlot(key: layout.prefix + "slots/models/fake%2Fopus/99999999999999999999", value: []) == .unreadable)
    }

    @Test func aTicketCarriesItsHostsPriorityAndAValueNoDaemonWritesCountsAsZero() {
        for priority in [0, 5, -1_000_000, Int.max, Int.min] {
            #expect(SlotLayout.ticketPriority(SlotLayout.ticketValue(priority: priority)) == priority)
        }
        #expect(SlotLayout.ticketValue(priority: 5) == Array("{\"priority\":5}".utf8))
        for value in ["", "{}", "{\"priority\":}", "{\"priority\":99999999999999999999}", "{\"priority\":1x}", "garbage"] {
            #expect(SlotLayout.ticketPriority(Array(value.utf8)) == 0, "\(value)")
        }
    }

    @Test func aPauseKeyNamesItsProjectAndNothingElseReadsAsOne() {
        let key = layout.pauseKey(project: "alpha/web")
        #expect(key == "/turnstile/fleet-a/pauses/alpha%2Fweb")
        #expect(layout.pausedProject(key: key) == "alpha/web")
        #expect(layout.pausedProject(key: layout.prefix + "pauses/") == nil)
        #expect(layout.pausedProject(key: layout.prefix + "pauses/a/b") == nil)
        #expect(layout.pausedProject(key: layout.prefix + "pauses/%zz") == nil)
        #expect(layout.pausedProject(key: layout.prefix + "flags/alpha") == nil)
    }

    @Test func aSlotReadsBackAsWritten() throws {
        let key = layout.slotKey(kind: "models", name: "anthropic/claude-opus-4", index: 2)
        #expect(key == "/turnstile/fleet-a/slots/models/anthropic%2Fclaude-opus-4/2")
        let slot = try #require(layout.slot(key: key, value: layout.slotValue(fence: 41)))
        #expect(slot == SlotLayout.Slot(kind: "models", name: "anthropic/claude-opus-4", index: 2, host: "builder-3", fence: 41))
        let other = SlotLayout(prefix: layout.prefix, host: "h2")
        #expect(layout.slot(key: key, value: other.slotValue(fence: UInt64.max))?.host == "h2")
        #expect(layout.slot(key: key, value: other.slotValue(fence: UInt64.max))?.fence == UInt64.max)
    }

    @Test func namesWithSlashesAndPercentsKeepTheirOwnKeys() {
        for name in ["a/b", "a%2Fb", "a%b", "%", "a/b/c"] {
            let key = layout.slotKey(kind: "models", name: name, index: 0)
            #expect(layout.slot(key: key, value: layout.slotValue(fence: 1))?.name == name, "\(name) → \(key)")
        }
        #expect(layout.slotKey(kind: "models", name: "a/b", index: 0) != layout.slotKey(kind: "models", name: "a%2Fb", index: 0))
    }

    @Test func whatNoDaemonWritesIsNotASlot() {
        let key = layout.slotKey(kind: "models", name: "p/m", index: 0)
        let values = ["", "{}", "{\"host\":\"h\",\"fence\":}", "{\"host\":\"h\",\"fence\":-1}", "{\"host\":\"h\",\"fence\":1x}",
                      "{\"host\":\"h\",\"fence\":18446744073709551616}", "{\"host\":\"h\\x\",\"fence\":1}"]
        for value in values { #expect(layout.slot(key: key, value: Array(value.utf8)) == nil, "\(value)") }
        let keys = ["/turnstile/fleet-a/slots/models/p%2Fm", "/turnstile/fleet-a/slots/models/p%2Fm/01",
                    "/turnstile/fleet-a/slots/models/p%2Fm/-1", "/turnstile/fleet-a/slots/models/p%2Xm/0",
                    "/turnstile/fleet-ab/slots/models/p%2Fm/0", "/turnstile/fleet-a/slots//p%2Fm/0"]
        for key in keys { #expect(layout.slot(key: key, value: layout.slotValue(fence: 1)) == nil, "\(key)") }
    }

    @Test func throttlesFlagsTicketsAndLimitsHaveTheirOwnKeys() throws {
        let throttle = layout.throttleKey(tenant: "local", provider: "anthropic")
        #expect(throttle == "/turnstile/fleet-a/throttles/local/anthropic")
        #expect(try #require(layout.control(key: throttle)) == ("local", "anthropic"))
        let flag = layout.flagKey(model: "zai/glm-5")
        #expect(layout.flaggedModel(key: flag) == "zai/glm-5" && layout.control(key: flag) == nil)
        let ticket = layout.ticketKey(kind: "models", name: "zai/glm-5", waiter: "7-12")
        #expect(ticket == "/turnstile/fleet-a/tickets/models/zai%2Fglm-5/builder-3/7-12")
        #expect(try #require(layout.ticket(key: ticket)) == ("models", "zai/glm-5", "builder-3", "7-12"))
        #expect(layout.ticket(key: "/turnstile/fleet-a/tickets/models/zai%2Fglm-5/builder-3") == nil, "a key without its waiter")
        #expect(layout.limitKey(kind: "models", name: "zai/glm-5") == "/turnstile/fleet-a/limits/models/zai%2Fglm-5")
        #expect(SlotLayout.controlEnd(SlotLayout.controlValue(untilUnixMilliseconds: 1_700_000_000_123)) == 1_700_000_000_123)
        for value in ["", "{\"until_unix_ms\":}", "{\"until_unix_ms\":-5}", "{\"until_unix_ms\":99999999999999999999}"] {
            #expect(SlotLayout.controlEnd(Array(value.utf8)) == nil, "\(value)")
        }
    }
}
