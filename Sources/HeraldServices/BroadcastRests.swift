import Synchronization

/// Broadcasts whose last claim found nothing due although their channel had tokens (every job in
/// flight, waiting for a retry, or outside its send window), and until when the lanes leave them
/// alone.
///
/// Without it a lane asked again on every pass over the channels, and each such claim is two
/// statements on the channel's bucket row (take the tokens, give them back) for nothing: with
/// many broadcasts in that state (a provider outage puts thousands of jobs into backoff, or the
/// tail of a thousand broadcasts with their last sends out) that was most of the claims. A rest
/// ends early when something may have become due: new jobs (the `herald_jobs` notification) or
/// an outcome of this worker that puts a job back in the queue (a retry, a hand-back, the next
/// part of a message); other workers' hand-backs wait for the rest to end.
final class BroadcastRests: Sendable {
    private let until = Mutex<[Int64: ContinuousClock.Instant]>([:])

    /// Leaves `broadcast` alone until `instant`.
    func rest(_ broadcast: Int64, until instant: ContinuousClock.Instant) {
        until.withLock { $0[broadcast] = instant }
    }

    /// When `broadcast`'s rest ends, or nil when it is not resting at `now`.
    func restingUntil(_ broadcast: Int64, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        until.withLock { all in
            guard let end = all[broadcast] else { return nil }
            return end > now ? end : nil
        }
    }

    /// Ends the rest of these broadcasts.
    func wake(_ broadcasts: some Sequence<Int64>) {
        until.withLock { all in
            guard !all.isEmpty else { return }
            for id in broadcasts { all[id] = nil }
        }
    }

    /// Ends every rest.
    func wakeAll() {
        until.withLock { $0.removeAll(keepingCapacity: true) }
    }

    /// Forgets rests that have ended.
    func prune(now: ContinuousClock.Instant) {
        until.withLock { all in all = all.filter { $0.value > now } }
    }
}
