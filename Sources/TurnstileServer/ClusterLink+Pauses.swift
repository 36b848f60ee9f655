import TurnstileCluster
import TurnstileCore

/// Pauses shared across the fleet (`shared = [..., "pauses"]`, protocol/CLUSTER.md §4a):
/// pausing a project on one host pauses it on every host. Each host's pause flags (its pause
/// directory: the `pause` op, a breaker trip, a file created by hand) are mirrored with the keys
/// `pauses/<project>`, which have no lease: a pause outlives the host that made it.
///
/// After each poll the three sets are merged: the flags here (L), the keys in etcd (E) and the
/// projects both agreed on when they last met (S). A project in L only is a pause made here
/// (not in S: put its key) or a pause lifted elsewhere (in S: remove the flag here); in E only,
/// a pause made elsewhere (not in S: create the flag here) or lifted here (in S: delete the
/// key). So pauses made or lifted while the cluster could not be reached are shared once it
/// can, and a daemon joining the fleet takes on its pauses and shares its own; a pause made on
/// one host and lifted on another at the same moment ends as the later write left etcd.
extension ClusterLink {
    var sharesPauses: Bool { config.shared.contains(.pauses) }

    /// The poll's pauses range, when shared.
    func pausesPolled(_ entries: [EtcdKeyValue], serial: Int) {
        guard sharesPauses, let flags = server.pauseFlags.flags() else { return }
        let here = Set(flags), fleet = Set(entries.compactMap { layout.pausedProject(key: $0.key) })
        var changedHere = false
        // A key naming no valid project (written by hand, or by another program) is not ours.
        for project in here.union(fleet).sorted() where Names.projectNameProblem(project) == nil && project != Names.globalProject {
            // A change this host made since (or just before) this poll was sent: not news yet.
            if pauseWrites.hides(project, from: serial) { continue }
            switch (here.contains(project), fleet.contains(project), pausesAgreed.contains(project)) {
            case (true, false, false):
                writePause(project, paused: true)
            case (true, false, true):
                logger.info("cluster: a project's pause was lifted on another host", metadata: ["project": "\(project)"])
                if let problem = server.pauseFlags.remove(project) { logger.error("\(problem)") }
                pausesAgreed.remove(project)
                changedHere = true
            case (false, true, false):
                logger.info("cluster: a project was paused on another host", metadata: ["project": "\(project)"])
                if let problem = server.pauseFlags.create(project) { logger.error("\(problem)") } else { pausesAgreed.insert(project) }
                changedHere = true
            case (false, true, true):
                writePause(project, paused: false)
            case (true, true, _):
                pausesAgreed.insert(project)
            case (false, false, _):
                pausesAgreed.remove(project)
            }
        }
        if changedHere { session.syncPauseFlags() }
    }

    /// Puts (or deletes) a project's pause key; on success both sides agree on it.
    private func writePause(_ project: String, paused: Bool) {
        let key = layout.pauseKey(project: project)
        pauseWrites.began(project)
        let done: @Sendable (Result<Void, EtcdError>) -> Void = { [inbox] result in
            inbox.post { link in
                link.pauseWrites.acknowledged(project, poll: link.pollSerial)
                switch result {
                case .success where paused: link.pausesAgreed.insert(project)
                case .success: link.pausesAgreed.remove(project)
                case .failure(let error):
                    link.logger.warning("cluster: could not share a pause", metadata: ["project": "\(project)", "error": "\(error)"])
                }
            }
        }
        if paused {
            let value = "{\"host\":\"\(layout.host)\",\"since_unix_ms\":\(server.wall.unixMilliseconds)}"
            client.put(key, Array(value.utf8)) { done($0.map { _ in () }) }
        } else {
            client.deleteRange(.key(key)) { done($0.map { _ in () }) }
        }
    }
}
