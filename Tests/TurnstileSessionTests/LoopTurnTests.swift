import Testing
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// What one loop turn takes in and lets out, over the in-memory transport: fair turns,
/// backpressure, grants withdrawn when the journal fails, process watches, deadlines.
@Suite("Session: loop turns")
struct LoopTurnTests {
    @Test func aPipelinedReadIsHandledInTurnsOfSixtyFourLines() {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        let lines = (1...100).map { #"{"id":\#($0),"op":"hello"}"# + "\n" }.joined()
        #expect(loop.send(lines, on: client) == .backlog)
        #expect(loop.received(client).count == Session.linesPerTurn)
        #expect(loop.session.resume(client, highWater: loop.highWater) == .readMore)
        loop.commit()
        #expect(loop.received(client).map { $0.int("id") } == (65...100).map { Int64($0) })
    }

    @Test func aTurnStopsWhenUnsentAnswersReachTheHighWater() {
        let loop = EmbeddedTransport()
        loop.highWater = 300
        let client = loop.connect()
        let lines = (1...10).map { #"{"id":\#($0),"op":"hello"}"# + "\n" }.joined()
        let outcome = Array(lines.utf8).withUnsafeBufferPointer {
            loop.session.receive($0, on: client, highWater: loop.highWater)
        }
        #expect(outcome == .blocked)
        #expect(client.hasBacklog)
        loop.commit()
        #expect(loop.received(client).count < 10)
    }

    @Test func aGrantThatCannotBeJournaledIsAnsweredStorageAndTakenBack() throws {
        let loop = EmbeddedTransport { $0.limits.global = 1 }
        let watcher = loop.connect()
        loop.request(#"{"id":"w","op":"watch"}"#, on: watcher)
        _ = loop.received(watcher)
        let client = loop.connect()
        loop.storageFails = true
        loop.request(#"{"id":1,"op":"acquire"}"#, on: client)
        let refused = try #require(loop.answer(client))
        #expect(refused.string("error") == "unavailable" && refused.string("reason") == "storage" && refused.int("id") == 1)
        #expect(loop.received(watcher).isEmpty)
        #expect(loop.session.broker.leaseCount == 0)
        #expect(loop.session.storageFailing)

        loop.storageFails = false
        loop.request(#"{"id":2,"op":"acquire"}"#, on: client)
        #expect(try #require(loop.answer(client)).ok)
        #expect(!loop.session.storageFailing && loop.session.storageFailures == 1)
        // The kept batch holds the withdrawn grant and the record that undoes it, then the new grant.
        #expect(loop.journal.map { $0.contains(#""t":"grant""#) ? "grant" : $0.contains(#""t":"end""#) ? "end" : "?" }
            == ["grant", "end", "grant"])
    }

    @Test func aPidBoundLeaseIsWatchedAndReleasedWhenItsProcessExits() throws {
        let loop = EmbeddedTransport()
        loop.host.livePids = [900]
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","pid":900,"detach":true}"#, on: client)
        #expect(try #require(loop.answer(client)).ok)
        #expect(loop.commands == [.watchProcess(900)])
        loop.host.livePids = []
        loop.session.processExited(900)
        loop.commit()
        #expect(loop.session.broker.leaseCount == 0)
        #expect(loop.commands.last == .unwatchProcess(900))
    }

    @Test func aPidThatIsGoneIsABadRequest() throws {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","pid":901}"#, on: client)
        let answer = try #require(loop.answer(client))
        #expect(answer.string("error") == "bad_request" && answer.string("field") == "pid")
    }

    @Test func aProcessGoneBeforeItsWatchBeganReleasesItsLeaseInTheSameCommit() throws {
        let loop = EmbeddedTransport()
        loop.host.livePids = [902]
        let client = loop.connect()
        let lines = #"{"id":1,"op":"acquire","pid":902,"detach":true}"# + "\n"
        _ = Array(lines.utf8).withUnsafeBufferPointer { loop.session.receive($0, on: client, highWater: 65_536) }
        loop.host.livePids = []
        loop.commit()
        #expect(loop.session.broker.leaseCount == 0)
    }

    @Test func anExpiredLeaseEndsAtTheDeadlineAndItsHolderIsTold() throws {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","ttl_ms":1000}"#, on: client)
        #expect(try #require(loop.answer(client)).ok)
        loop.advance(999)
        #expect(loop.received(client).isEmpty)
        loop.advance(2)
        #expect(try #require(loop.answer(client)).string("event") == "expired")
        #expect(loop.session.broker.leaseCount == 0)
    }

    @Test func aHeartbeatReadBeforeDeadlinesAreServedCountsForItsLease() throws {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","ttl_ms":1000}"#, on: client)
        let token = try #require(loop.answer(client)?.string("lease"))
        // The loop stalled past the deadline; the heartbeat was read first in the turn.
        loop.host.now = loop.host.now.adding(milliseconds: 1500)
        loop.request(#"{"id":2,"op":"heartbeat","lease":"\#(token)"}"#, on: client)
        #expect(try #require(loop.answer(client)).ok)
        loop.session.serveDeadlines()
        loop.commit()
        #expect(loop.session.broker.leaseCount == 1)
    }

    @Test func aPauseCreatesItsFlagBeforeTheAnswerAndATripRunsTheHook() throws {
        let loop = EmbeddedTransport { $0.circuitBreaker.threshold = 1 }
        let admin = loop.connect()
        loop.request(#"{"id":1,"op":"pause","project":"alpha"}"#, on: admin)
        #expect(try #require(loop.answer(admin)).ok)
        #expect(loop.host.flags == ["alpha"])
        loop.request(#"{"id":2,"op":"report","project":"beta","agent":"project-meta","success":false}"#, on: admin)
        #expect(try #require(loop.answer(admin)).ok)
        #expect(loop.commands.contains(.runTripHook(project: "beta", failures: 1)))
        #expect(loop.host.flags == ["alpha", "beta"])
    }
}
