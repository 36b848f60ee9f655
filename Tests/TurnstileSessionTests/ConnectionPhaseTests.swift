import Testing
import TurnstileCore
import TurnstileProtocol
import TurnstileSession

/// A connection's phases, driven over the in-memory transport: open, half-closed while its
/// waiters are answered, closing; and the closes the session asks of its transport.
@Suite("Session: connection phases")
struct ConnectionPhaseTests {
    @Test func anAcquireIsAnsweredAndItsGrantJournaledInTheSameTurn() throws {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","project":"alpha"}"#, on: client)
        let answer = try #require(loop.answer(client))
        #expect(answer.ok && answer.int("id") == 1 && answer.string("lease") != nil)
        #expect(loop.journal.count == 1 && loop.journal[0].contains(#""t":"grant""#))
        #expect(client.phase == .open)
    }

    @Test func endOfInputWithAWaiterHalfClosesUntilItIsAnsweredThenClosesAfterTheAnswer() throws {
        let loop = EmbeddedTransport { $0.limits.global = 1 }
        let holder = loop.connect()
        loop.request(#"{"id":1,"op":"acquire"}"#, on: holder)
        let token = try #require(loop.answer(holder)?.string("lease"))
        let waiter = loop.connect()
        loop.request(#"{"id":7,"op":"acquire","wait_ms":60000}"#, on: waiter)
        #expect(loop.received(waiter).isEmpty)
        loop.session.inputEnded(on: waiter, peerGone: false)
        loop.commit()
        #expect(waiter.phase == .halfClosed)
        #expect(loop.closed[waiter.id] == nil)

        loop.request(#"{"id":2,"op":"release","lease":"\#(token)"}"#, on: holder)
        let granted = try #require(loop.answer(waiter))
        #expect(granted.ok && granted.int("id") == 7)
        #expect(waiter.phase == .closing)
        #expect(loop.closed[waiter.id] == .afterFlush)
    }

    @Test func endOfInputWithNothingPendingClosesAfterFlushAndKeepsDetachedLeases() throws {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","detach":true}"#, on: client)
        loop.request(#"{"id":2,"op":"acquire"}"#, on: client)
        #expect(loop.received(client).count == 2)
        loop.session.inputEnded(on: client, peerGone: false)
        loop.commit()
        #expect(loop.closed[client.id] == .afterFlush)
        #expect(loop.session.broker.leaseCount == 1)
    }

    @Test func aPeerGoneWithAWaiterIsClosedAtOnceAndItsWaiterDropped() {
        let loop = EmbeddedTransport { $0.limits.global = 1 }
        let holder = loop.connect()
        loop.request(#"{"id":1,"op":"acquire"}"#, on: holder)
        let waiter = loop.connect()
        loop.request(#"{"id":1,"op":"acquire","wait_ms":60000}"#, on: waiter)
        #expect(loop.session.broker.waiterCount == 1)
        loop.session.inputEnded(on: waiter, peerGone: true)
        loop.commit()
        #expect(loop.closed[waiter.id] == .now)
        #expect(loop.session.broker.waiterCount == 0)
    }

    @Test func anUnterminatedLastLineIsHandledAtEndOfInput() throws {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        loop.send(#"{"id":3,"op":"hello"}"#, on: client)
        #expect(loop.received(client).isEmpty)
        loop.session.inputEnded(on: client, peerGone: false)
        loop.commit()
        let answer = try #require(loop.answer(client))
        #expect(answer.ok && answer.string("server") == "turnstiled")
    }

    @Test func aLineTooLongIsAnsweredAndTheConnectionClosesAfterTheAnswer() throws {
        let loop = EmbeddedTransport()
        let client = loop.connect()
        let outcome = loop.send(String(repeating: "x", count: LineFramer.lineBytesMax + 10), on: client)
        #expect(outcome == .closing)
        #expect(try #require(loop.answer(client)).string("error") == "line_too_long")
        #expect(loop.closed[client.id] == .afterFlush)
    }

    @Test func aPeerThatMayNotConnectIsAnsweredForbiddenAndClosed() throws {
        let loop = EmbeddedTransport()
        let stranger = loop.connect(uid: 1234)
        #expect(stranger.phase == .closing)
        #expect(try #require(loop.answer(stranger)).string("error") == "forbidden")
        #expect(loop.closed[stranger.id] == .afterFlush)
    }

    @Test func aReloadThatRemovesAPeersRightsClosesItAndReleasesItsLeases() throws {
        let loop = EmbeddedTransport { $0.access.allowUIDs = [2000] }
        let peer = loop.connect(uid: 2000)
        loop.request(#"{"id":1,"op":"acquire"}"#, on: peer)
        #expect(loop.answer(peer)?.ok == true)
        loop.host.nextConfig = .success(TurnstileConfig())
        #expect(loop.session.reload() == nil)
        loop.commit()
        #expect(try #require(loop.answer(peer)).string("error") == "forbidden")
        #expect(loop.closed[peer.id] == .afterFlush)
        #expect(loop.session.broker.leaseCount == 0)
    }

    @Test func aClientHoldingTooMuchUnsentOutputIsCutOffAtOnce() {
        let loop = EmbeddedTransport { $0.server.maxOutputBytes = 4096 }
        let client = loop.connect()
        client.transportBytes = 5000
        loop.request(#"{"id":1,"op":"hello"}"#, on: client)
        #expect(loop.closed[client.id] == .now)
        #expect(loop.received(client).isEmpty)
    }
}
