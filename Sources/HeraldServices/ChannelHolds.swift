import Synchronization

/// When each channel may be asked for work again, and which channels a lane is claiming now.
///
/// A hold is set when the channel's bucket was empty (until it refills), when the bucket granted
/// less than asked (until a useful batch has accrued: fewer, larger claims), and when a provider
/// answered 429 (until its Retry-After). A channel being claimed by one lane is skipped by the
/// others, so lanes never queue on one channel's bucket row.
final class ChannelHolds: Sendable {
    private struct State {
        var until: [Int64: ContinuousClock.Instant] = [:]
        var claiming: Set<Int64> = []
    }
    private let state = Mutex(State())

    /// Marks `channel` as being claimed, unless it is held or already being claimed.
    /// - Returns: nil when the lane may go ahead, else when to look again.
    func begin(_ channel: Int64, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        state.withLock { s in
            if let until = s.until[channel], until > now { return until }
            if s.claiming.contains(channel) { return now }
            s.claiming.insert(channel)
            return nil
        }
    }

    /// Ends a claim begun with ``begin(_:now:)``.
    func end(_ channel: Int64) {
        _ = state.withLock { $0.claiming.remove(channel) }
    }

    /// Holds `channel` until `instant` (a later hold already in place wins).
    func hold(_ channel: Int64, until instant: ContinuousClock.Instant) {
        state.withLock { s in
            if let current = s.until[channel], current >= instant { return }
            s.until[channel] = instant
        }
    }

    /// Forgets holds that have passed (kept small with thousands of channels).
    func prune(now: ContinuousClock.Instant) {
        state.withLock { s in s.until = s.until.filter { $0.value > now } }
    }
}
