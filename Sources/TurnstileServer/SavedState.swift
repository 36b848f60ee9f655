import Foundation
import TurnstileCore

/// `state.json` as read back at start, record by record: a lease that does not decode (a
/// `model` without `/`, a missing field) or a section that does not (`breaker`, `throttles`,
/// `telemetry`) is left out and described in `problems`, and the rest is kept. Only a file
/// that is not a JSON object at all fails as a whole.
struct SavedState: Decodable {
    var journalSegment: UInt64?
    var snapshot = BrokerSnapshot(fenceHighWater: 0, leases: [], breaker: [:], throttles: [], telemetry: nil)
    var problems: [String] = []

    private enum FileKeys: String, CodingKey {
        case journalSegment = "journal_segment", state
    }

    private enum StateKeys: String, CodingKey {
        case fenceHighWater = "fence_high_water", leases, breaker, throttles, telemetry
    }

    init(from decoder: any Decoder) throws {
        let file = try decoder.container(keyedBy: FileKeys.self)
        do {
            journalSegment = try file.decode(UInt64.self, forKey: .journalSegment)
        } catch {
            problems.append("journal_segment: \(describe(error)); every journal segment is replayed")
        }
        let state = try file.nestedContainer(keyedBy: StateKeys.self, forKey: .state)
        snapshot.fenceHighWater = section(state, .fenceHighWater, default: 0)
        snapshot.breaker = section(state, .breaker, default: [:])
        snapshot.throttles = section(state, .throttles, default: [])
        snapshot.telemetry = section(state, .telemetry, default: nil)
        do {
            var leases = try state.nestedUnkeyedContainer(forKey: .leases)
            while !leases.isAtEnd {
                let lease = try leases.decode(LenientLease.self)
                switch lease.outcome {
                case .success(let record): snapshot.leases.append(record)
                case .failure(let error):
                    problems.append("lease fence \(lease.fence.map(String.init) ?? "unknown"): \(describe(error))")
                }
            }
        } catch {
            problems.append("leases: \(describe(error))")
        }
    }

    /// One section, or `fallback` (with a problem noted) if it does not decode.
    private mutating func section<T: Decodable>(_ container: KeyedDecodingContainer<StateKeys>, _ key: StateKeys,
                                                default fallback: T) -> T {
        do {
            return try container.decodeIfPresent(T.self, forKey: key) ?? fallback
        } catch {
            problems.append("\(key.stringValue): \(describe(error))")
            return fallback
        }
    }
}

/// One saved lease that never fails to decode: it holds the lease or why not, with the fence
/// when that much is readable (for the log line).
private struct LenientLease: Decodable {
    var outcome: Result<LeaseRecord, any Error>
    var fence: UInt64?

    private enum Keys: String, CodingKey { case fence }

    init(from decoder: any Decoder) {
        fence = try? decoder.container(keyedBy: Keys.self).decode(UInt64.self, forKey: .fence)
        do {
            outcome = .success(try LeaseRecord(from: decoder))
        } catch {
            outcome = .failure(error)
        }
    }
}
