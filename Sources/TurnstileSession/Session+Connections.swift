import TurnstileCore
import TurnstileProtocol

/// A connection's life as the transport reports it: opened, bytes read in turns, input
/// ended, closed; and the answers and closes the session queues for it.
///
/// Fair turns: one call handles at most `linesPerTurn` lines of a connection. A client
/// pipelining thousands of requests in one read would otherwise hold the loop while everyone
/// else's answers wait; its unread lines stay in its framer's backlog and the transport gives
/// it its next turn after the others had theirs (`resume`). Backpressure: a turn also ends
/// when the connection's unsent answers reach the transport's high water, and the transport
/// reads no more of it until they drain (protocol/PROTOCOL.md §2 and §12).
extension Session {
    /// Lines one connection may have handled in one turn.
    public static let linesPerTurn = 64

    /// How a connection's turn ended: what the transport does next with its input.
    public enum TurnOutcome: Equatable, Sendable {
        /// Everything read was handled: read more.
        case readMore
        /// Lines are left for a later turn: stop reading, give it another turn soon.
        case backlog
        /// Its unsent answers reached the high water: read nothing until they drain.
        case blocked
        /// It is closing: read nothing more.
        case closing
    }

    /// A connection the transport accepted: its rights are decided from its credentials. A
    /// peer that may not connect, or one over the connection bound, is answered one error line
    /// and closed after it.
    /// - Returns: the connection; one refused is already `closing`, its answer in its output.
    @discardableResult
    public func open(_ id: ClientID, credentials: PeerCredentials?, overCapacity: Bool) -> SessionConnection {
        let connection = SessionConnection(id: id, credentials: credentials)
        connections[id] = connection
        connection.rights = PeerRights.of(credentials, access: config.access, daemonUID: host.daemonUID)
        if connection.rights == .none {
            guard let credentials else {
                logger.warning("refused a connection whose peer credentials cannot be read")
                refuse(connection, code: .forbidden, message: "this turnstiled cannot read your credentials (SO_PEERCRED)")
                return connection
            }
            logger.warning("refused a connection",
                           metadata: ["uid": "\(credentials.uid)", "gid": "\(credentials.gid)", "pid": "\(credentials.pid)"])
            refuse(connection, code: .forbidden, message: "uid \(credentials.uid) may not connect to this turnstiled")
            return connection
        }
        if overCapacity {
            logger.warning("too many connections", metadata: ["limit": "\(config.server.maxConnections)"])
            refuse(connection, code: .tooMany, message: "too many connections (limit \(config.server.maxConnections))")
            return connection
        }
        return connection
    }

    /// Answers one error line and closes.
    func refuse(_ connection: SessionConnection, code: ErrorCode, message: String) {
        Answers.failure(&connection.output, id: nil, code: code, message: message)
        scheduleFlush(connection)
        close(connection, .afterFlush)
    }

    /// Bytes read: frames them into lines and handles each, within the connection's turn.
    /// - Parameter highWater: unsent bytes at which the turn ends and reading stops.
    public func receive(_ bytes: UnsafeBufferPointer<UInt8>, on connection: SessionConnection,
                        highWater: Int) -> TurnOutcome {
        guard connection.phase == .open else { return .closing }
        var budget = Self.linesPerTurn
        let outcome = connection.framer.append(bytes) { line in
            handleInTurn(line, on: connection, budget: &budget, highWater: highWater)
        }
        return framed(connection, outcome, highWater: highWater)
    }

    /// The next turn of a connection with lines left over.
    public func resume(_ connection: SessionConnection, highWater: Int) -> TurnOutcome {
        guard connection.phase == .open else { return .closing }
        var budget = Self.linesPerTurn
        let outcome = connection.framer.resume { line in
            handleInTurn(line, on: connection, budget: &budget, highWater: highWater)
        }
        return framed(connection, outcome, highWater: highWater)
    }

    /// Handles one line; whether the connection's turn goes on.
    @inline(__always)
    private func handleInTurn(_ line: UnsafeBufferPointer<UInt8>, on connection: SessionConnection, budget: inout Int,
                              highWater: Int) -> Bool {
        handleLine(line, on: connection)
        budget -= 1
        return connection.phase == .open && budget > 0 && connection.bufferedBytes < highWater
    }

    /// After a turn: answer an over-long line and close; else say what the input does next.
    private func framed(_ connection: SessionConnection, _ outcome: LineFramer.Outcome, highWater: Int) -> TurnOutcome {
        guard connection.phase == .open else { return .closing }
        if outcome == .lineTooLong {
            send(to: connection) { w in
                Answers.failure(&w, id: nil, code: .lineTooLong,
                                message: "line longer than \(LineFramer.lineBytesMax) bytes; closing the connection")
            }
            close(connection, .afterFlush)
            return .closing
        }
        if connection.bufferedBytes >= highWater { return .blocked }
        return connection.framer.hasBacklog ? .backlog : .readMore
    }

    /// The peer stopped sending (EOF). Its last line, if unterminated, is handled; then the
    /// connection closes, unless requests still wait: then it is half-closed until they are
    /// answered (`echo … | socat`), while the transport checks that the peer is still there.
    /// - Parameter peerGone: the peer closed its socket entirely, not just its sending side.
    public func inputEnded(on connection: SessionConnection, peerGone: Bool) {
        guard connection.phase == .open else { return }
        connection.framer.finish { line in
            handleLine(line, on: connection)
            return true
        }
        guard connection.phase == .open else { return }
        if peerGone { return close(connection, .now) }
        guard !connection.pending.isEmpty else { return close(connection, .afterFlush) }
        connection.phase = .halfClosed
    }

    /// Queues an answer or event for a connection (written at the commit). A connection
    /// already holding more than `max_output_bytes` unsent is cut off instead: one answer,
    /// however large (a status of ten thousand leases), always goes out whole.
    func send(to connection: SessionConnection, _ write: (inout JSONWriter) -> Void) {
        guard connection.phase != .closing else { return }
        if connection.bufferedBytes > config.server.maxOutputBytes {
            logger.warning("cutting off a client that does not read its answers",
                           metadata: ["client": "\(connection.id)", "pid": "\(connection.pid)",
                                      "buffered": "\(connection.bufferedBytes)"])
            connection.output.removeAll(keepingCapacityUpTo: 1024)
            close(connection, .now)
            return
        }
        write(&connection.output)
        scheduleFlush(connection)
    }

    /// Lists a connection for the commit's writes, once.
    func scheduleFlush(_ connection: SessionConnection) {
        guard !connection.queuedForFlush else { return }
        connection.queuedForFlush = true
        outbox.flushes.append(connection)
    }

    /// Moves the connections to write, each once, into `buffer` (emptied first; two arrays are
    /// swapped, none allocated).
    public func takeFlushes(into buffer: inout [SessionConnection]) {
        buffer.removeAll(keepingCapacity: true)
        swap(&buffer, &outbox.flushes)
        for connection in buffer { connection.queuedForFlush = false }
    }

    /// Closes a connection: no more reads or answers, and its bound leases are released and
    /// its waiters dropped (unless the daemon is stopping: then they are saved and restored).
    /// The transport closes the socket at the commit.
    func close(_ connection: SessionConnection, _ kind: CloseKind) {
        outbox.closes.append((connection.id, kind))
        closed(connection)
    }

    /// The transport closed a connection, or is closing it (a write failed, the peer is gone,
    /// it stalled): the same as `close`, without asking the transport to do it.
    public func transportClosed(_ connection: SessionConnection) {
        closed(connection)
    }

    private func closed(_ connection: SessionConnection) {
        guard connection.phase != .closing else { return }
        connection.phase = .closing
        watchers[connection.id] = nil
        guard !stopping else { return }
        connection.pending.removeAll()
        connection.pendingByKey.removeAll()
        take(broker.disconnect(connection.id, now: now))
        processEffects()
    }

    /// The transport let go of the connection entirely: forget it.
    public func forget(_ connection: SessionConnection) {
        transportClosed(connection)
        connections[connection.id] = nil
    }

    /// A half-closed connection answered its last pending request: close it.
    func closeIfDone(_ connection: SessionConnection) {
        if connection.phase == .halfClosed && connection.pending.isEmpty { close(connection, .afterFlush) }
    }

    /// After a reload: every open connection's rights are decided again from the new access
    /// table. A peer that may no longer connect is told `forbidden` and closed (its bound
    /// leases released, as on any disconnect); one that lost admin keeps only the client ops.
    func reviewRights() {
        let access = config.access
        for connection in connections.values where connection.phase != .closing && connection.rights != .none {
            let rights = PeerRights.of(connection.credentials, access: access, daemonUID: host.daemonUID)
            guard rights != connection.rights else { continue }
            logger.info("rights changed by a reload", metadata: [
                "client": "\(connection.id)", "uid": "\(connection.uid)", "from": "\(connection.rights)", "to": "\(rights)"])
            connection.rights = rights
            if rights == .none {
                refuse(connection, code: .forbidden, message: "uid \(connection.uid) may no longer connect to this turnstiled")
            }
        }
    }
}
