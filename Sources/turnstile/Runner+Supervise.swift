#if canImport(Glibc)
import Glibc
#endif
import CLibUV
import TurnstileClient
import TurnstileProtocol

extension Runner {
    /// What woke the loop.
    enum Input {
        case signal(Int32)
        case message(JSONObject)
        case childChanged
        case disconnected
        case timeout
    }

    /// Keeps the lease alive while COMMAND runs.
    /// - Returns: COMMAND's exit code (128+N for signal N).
    mutating func supervise() -> Int32 {
        let interval = max(ttlMilliseconds / 3, 1)
        nextHeartbeat = min(validity?.renewAt ?? Int64.max, SocketStream.monotonicMilliseconds() + interval)
        var nextReconnect: Int64 = 0
        while true {
            let now = SocketStream.monotonicMilliseconds()
            if let deadline = killAt, now >= deadline {
                child?.signal(SIGKILL)
                killAt = nil
            }
            if lost == nil, let validity, now >= validity.stopAt {
                leaseLost("its shared capacity was not confirmed in time (valid_until_ms)")
            }
            if lost == nil && client == nil {
                if now - lastConfirmed >= ttlMilliseconds {
                    leaseLost("the daemon did not come back within the lease's ttl")
                } else if now >= nextReconnect {
                    reconnect()
                    nextReconnect = now + 200
                }
            }
            if lost == nil, client != nil, now >= nextHeartbeat {
                heartbeatID = try? client?.send(.heartbeat(lease: token))
                heartbeatSentAt = now
                nextHeartbeat = now + interval
            }
            var wake = lost == nil ? (client == nil ? nextReconnect : nextHeartbeat) : Int64.max
            if let deadline = killAt { wake = min(wake, deadline) }
            if lost == nil, let validity { wake = min(wake, validity.stopAt) }
            let timeout = wake == Int64.max ? Int32(-1) : Int32(clamping: max(0, wake - now))
            switch waitForInput(timeout: timeout, watchChild: true) {
            case .childChanged:
                switch child!.poll() {
                case .exited(let code, let signal): return finished(code, signal: signal)
                case .stopped: passStopOn()
                case .running: break
                }
            case .signal(let number):
                if number == SIGCHLD {
                    if case .exited(let code, let signal) = child!.poll() { return finished(code, signal: signal) }
                    child?.reapOthers()
                } else {
                    child?.signal(number)
                }
            case .message(let message): handle(message)
            case .disconnected:
                client = nil
                if lost == nil { printError("turnstile: lost the daemon; reconnecting to keep the lease") }
            case .timeout: break
            }
        }
    }

    /// COMMAND ended. After a lost lease the rest of its group gets what is left of the
    /// grace and then SIGKILL, the whole group (README, "turnstile run"); `turnstile` waits for the
    /// group to be gone (reaping the orphans it inherited), at most two seconds past the
    /// SIGKILL (a process stuck in the kernel cannot hold `turnstile` forever).
    mutating func finished(_ code: Int32, signal: Int32?) -> Int32 {
        endedBySignal = signal
        guard lost != nil, let child else { return code }
        var giveUpAt: Int64?
        while true {
            child.reapOthers()
            if !child.groupIsAlive { break }
            let now = SocketStream.monotonicMilliseconds()
            if let deadline = killAt, now >= deadline {
                child.signal(SIGKILL)
                killAt = nil
            }
            if killAt == nil {
                if giveUpAt == nil { giveUpAt = now + 2000 }
                if now >= giveUpAt! { break }
            }
            var nothing = pollfd(fd: -1, events: 0, revents: 0)
            _ = poll(&nothing, 1, 20)
        }
        return code
    }

    /// An answer or event from the daemon while COMMAND runs.
    private mutating func handle(_ message: JSONObject) {
        if let event = WireEvent(message) {
            if (event.name == "expired" || event.name == "revoked") && event.lease == token { leaseLost(event.name) }
            return
        }
        guard let id = message["id"]?.numberValue?.int64, heartbeatID.map(Int64.init) == id else { return }
        heartbeatID = nil
        if message["ok"]?.boolValue == true {
            lastConfirmed = SocketStream.monotonicMilliseconds()
            // Counted from the heartbeat's send: the daemon answered after it.
            if let validFor = message["valid_until_ms"]?.numberValue.flatMap({ UInt64($0.text) }) {
                noteValidity(validFor, from: heartbeatSentAt)
            }
        } else if WireFailure(message)?.errorCode == .notFound {
            leaseLost("expired")
        }
    }

    /// After the daemon went away: connect again and re-attach the lease to COMMAND.
    private mutating func reconnect() {
        guard let fresh = try? TurnstileClient(socketPath: socketPath) else { return }
        guard let answer = try? fresh.call(.attach(lease: token, pgid: child!.pid),
                                           timeoutMilliseconds: 2000) else { return }
        if answer.ok {
            client = fresh
            lastConfirmed = SocketStream.monotonicMilliseconds()
            printError("turnstile: reconnected; the lease is kept")
        } else if answer.failure?.errorCode == .notFound {
            leaseLost("gone after the daemon restarted")
        }
    }

    /// The lease is gone: stop COMMAND's group, TERM first, KILL after the grace, or at the
    /// end of its shared capacity's validity if that comes first.
    mutating func leaseLost(_ why: String) {
        guard lost == nil else { return }
        lost = why
        printError("turnstile: lease lost (\(why)); stopping \(command[0])")
        child?.signal(SIGTERM)
        child?.signal(SIGCONT)
        killAt = min(SocketStream.monotonicMilliseconds() + graceMilliseconds, validity?.until ?? Int64.max)
    }

    /// A grant or heartbeat answer said the lease's shared capacity is surely valid for
    /// `validFor` ms from `start`: COMMAND is stopped a third of that before its end unless a
    /// later answer moves it (as the daemon counts its cluster lost a third of the host lease's
    /// ttl early), and the next heartbeat goes at a third of it.
    mutating func noteValidity(_ validFor: UInt64, from start: Int64) {
        let span = Int64(clamping: validFor)
        let until = start.addingReportingOverflow(span)
        guard !until.overflow else { return }
        validity = (renewAt: start + max(span / 3, 1), stopAt: until.partialValue - span / 3, until: until.partialValue)
        nextHeartbeat = min(nextHeartbeat, validity!.renewAt)
    }

    /// COMMAND was stopped (Ctrl-Z): stop too, so the shell gets its terminal back; when
    /// continued, hand the terminal back and continue COMMAND.
    private func passStopOn() {
        child?.reclaimTerminal()
        raise(SIGSTOP)
        child?.handTerminalBack()
        child?.signal(SIGCONT)
    }

    /// Gives the lease back, saying how COMMAND finished when it did (best effort: closing the
    /// connection ends the lease too, as a reclaim).
    /// - Returns: false if the daemon no longer knew the lease (it had ended first).
    @discardableResult
    mutating func release(exitCode: Int32? = nil) -> Bool {
        let end: ClientRequest.ProcessEnd? = endedBySignal.map { .signal($0) } ?? exitCode.map { .exitCode($0) }
        let answer = try? client?.call(.release(lease: token, end: end), timeoutMilliseconds: 2000)
        return answer?.failure?.errorCode != .notFound
    }

    /// Handles the lease events already read (set aside while waiting for an answer).
    mutating func takeLeaseEvents() {
        while let event = try? client?.nextEvent(timeoutMilliseconds: 0) { handle(event) }
    }


    /// Waits for a signal, a message from the daemon, or (with `watchChild`) the child's exit.
    mutating func waitForInput(timeout: Int32, watchChild: Bool) -> Input {
        if let client, client.hasPendingMessage, let message = try? client.nextMessage(timeoutMilliseconds: 0) {
            return .message(message)
        }
        var entries = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
        if let client { entries.append(pollfd(fd: client.stream.descriptor, events: Int16(POLLIN), revents: 0)) }
        if watchChild, let child, child.pidfd >= 0 { entries.append(pollfd(fd: child.pidfd, events: Int16(POLLIN), revents: 0)) }
        let ready = poll(&entries, nfds_t(entries.count), timeout)
        guard ready > 0 else { return .timeout }
        if entries[0].revents != 0 {
            let number = turnstile_signalfd_read(signals)
            if number == SIGCHLD { return .childChanged }
            if number > 0 { return .signal(number) }
        }
        if let client, entries.count > 1, entries[1].revents != 0 {
            do {
                if let message = try client.nextMessage(timeoutMilliseconds: 0) { return .message(message) }
            } catch {
                return .disconnected
            }
        }
        if watchChild, entries.count > 2 || (client == nil && entries.count > 1), entries.last!.revents != 0 {
            return .childChanged
        }
        return .timeout
    }
}
