import Synchronization

/// How fast `herald webhooks` reads large bodies, all of them together: at most
/// ``bytesPerSecond``, after a first ``burst`` read at once.
///
/// ``BodyAdmission`` bounds how many large bodies are read at once, but not how much CPU they
/// take: a flood of unsigned 1 MiB bodies, read and hashed back to back, still takes a core from
/// the small signed receipts that matter. Paced, the flood costs a fixed, small share of the
/// machine, and TCP holds its senders back. An occasional large batch from a provider fits in the
/// burst and is not slowed at all.
final class ReadPace: Sendable {
    let bytesPerSecond: Int
    let burst: Int
    private let now: @Sendable () -> ContinuousClock.Instant
    private let sleep: @Sendable (Duration) async -> Void
    /// When every byte spent so far is paid for (at ``bytesPerSecond``); nil: never spent.
    private let paidUntil = Mutex<ContinuousClock.Instant?>(nil)

    /// - Parameters: `now` and `sleep` decide when reading goes on (tests drive them).
    init(bytesPerSecond: Int, burst: Int,
         now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
         sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }) {
        self.bytesPerSecond = max(1, bytesPerSecond)
        self.burst = max(0, burst)
        self.now = now
        self.sleep = sleep
    }

    /// Accounts `bytes` just read, and waits while reading is ahead of the pace by more than the burst.
    func spend(_ bytes: Int) async {
        let wait = self.wait(after: bytes)
        if wait > .zero { await sleep(wait) }
    }

    /// How long to wait after spending `bytes` now.
    func wait(after bytes: Int) -> Duration {
        let now = now()
        let cost = Duration.nanoseconds(Int64(Double(bytes) / Double(bytesPerSecond) * 1e9))
        let allowance = Duration.nanoseconds(Int64(Double(burst) / Double(bytesPerSecond) * 1e9))
        let paid = paidUntil.withLock { paid -> ContinuousClock.Instant in
            let next = max(paid ?? now, now) + cost
            paid = next
            return next
        }
        return max(.zero, paid - now - allowance)
    }
}
