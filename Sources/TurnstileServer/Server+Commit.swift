import CLibUV
import TurnstileCore
import TurnstileSession

/// The end of every loop turn: the one place where what the turn decided leaves the daemon.
///
/// A libuv turn runs timers, then idle handles, then the poll's I/O callbacks (the input),
/// then check handles. The commit is the check handle, so within a turn:
/// 1. input read in this turn has been handled;
/// 2. deadlines due are served. A heartbeat read before that counts for any lease still here:
///    such a lease was alive when deadlines were last served, and the timer is armed at the
///    earliest deadline, so only a loop that could not run (stalled, stopped) reads a heartbeat
///    after its lease's deadline and before serving it, and the heartbeat was sent in time;
/// 3. the session's commands are carried out (process watches, group drains, the trip hook);
///    a process found gone as its watch begins is reported back at once;
/// 4. the turn's journal records are written (a grant is saved before its answer leaves, or
///    taken back and answered `storage`: Server+Storage);
/// 5. the turn's shared-capacity claims and unclaims go to the cluster, once their fences are
///    durable (ClusterLink+Claims); after a failed commit they wait for the next;
/// 6. answers and events are handed to the kernel, then the decided closes happen;
/// 7. the deadline timer is re-armed and a due snapshot started.
/// Callbacks that run before the poll (timers, idle turns) only ask for a commit: the active
/// `commitSoon` idle handle makes the poll return at once, so the commit follows without delay.
extension Server {
    /// Makes sure this loop turn ends with a commit without waiting in the poll.
    func requestCommit() {
        guard !stopping else { return }
        uv_idle_start(commitSoon, onCommitSoon)
    }

    /// The deadline timer fired: the deadlines are served at this turn's commit.
    func deadlineReached() {
        armedDeadline = nil
        deadlineDue = true
        requestCommit()
    }

    /// Commits the loop turn (see the type's comment).
    func commit() {
        if deadlineDue && !stopping {
            deadlineDue = false
            session.serveDeadlines()
        }
        performCommands()
        if commitStorage() { sendClaims() }
        flushAll()
        performCloses()
        if session.outbox.wantsWaitProgress {
            session.outbox.wantsWaitProgress = false
            startWaitProgress()
        }
        rearmDeadlineTimer()
        if !stopping { store.compactIfDue(now: now) { session.broker.snapshot(now: now, wall: wall) } }
        uv_idle_stop(commitSoon)
    }

    /// Hands the turn's claims, unclaims and shared controls to the cluster link.
    private func sendClaims() {
        guard let cluster else { return }
        if !session.outbox.claims.isEmpty || !session.outbox.unclaims.isEmpty {
            let claims = session.outbox.claims, unclaims = session.outbox.unclaims
            session.outbox.claims.removeAll(keepingCapacity: true)
            session.outbox.unclaims.removeAll(keepingCapacity: true)
            cluster.send(claims: claims, unclaims: unclaims)
        }
        if !session.outbox.sharedControls.isEmpty {
            let controls = session.outbox.sharedControls
            session.outbox.sharedControls.removeAll()
            cluster.send(controls: controls)
        }
    }

    /// Carries out the session's commands, until reporting what they found (a process already
    /// gone) asks for no more.
    func performCommands() {
        while !session.outbox.commands.isEmpty {
            let commands = session.outbox.commands
            session.outbox.commands.removeAll(keepingCapacity: true)
            for command in commands {
                switch command {
                case .watchProcess(let pid): processes.watch(pid)
                case .unwatchProcess(let pid): processes.unwatch(pid)
                case .drainGroup(let pgid, let killBy): groups.drain(pgid, killBy: killBy)
                case .runTripHook(let project, let failures): runTripHook(project: project, failures: failures)
                }
            }
            for pid in processes.takeExitedBeforeWatch() { session.processExited(pid) }
        }
    }
}
