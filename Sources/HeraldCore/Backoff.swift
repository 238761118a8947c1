/// How long to wait before retrying a delivery that failed transiently: exponential growth,
/// capped, with jitter so that messages that failed together do not retry together.
///
/// After attempt `n` (1 for the first failure) the ceiling is `d = min(cap, base * 2^(n-1))` and
/// the delay is drawn uniformly from `[d/2, d]` ("equal jitter": never less than half the
/// ceiling, so the backoff still grows). Resolution is one nanosecond.
///
/// ```swift
/// var rng = SystemRandomNumberGenerator()
/// Backoff().delay(afterAttempt: 3, using: &rng)   // between 2 s and 4 s
/// ```
public struct Backoff: Sendable {
    /// The ceiling after the first attempt.
    public var base: Duration = .seconds(1)
    /// The largest ceiling, reached after enough attempts.
    public var cap: Duration = .seconds(300)

    /// Creates a backoff policy.
    ///
    /// - Parameters:
    ///   - base: The ceiling after the first attempt (default 1 s).
    ///   - cap: The largest ceiling (default 300 s).
    public init(base: Duration = .seconds(1), cap: Duration = .seconds(300)) {
        self.base = base
        self.cap = cap
    }

    /// The delay before the next attempt.
    ///
    /// - Parameters:
    ///   - attempt: How many attempts have been made (1 after the first failure); values below 1
    ///     count as 1.
    ///   - rng: The source of jitter; inject a seeded generator in tests.
    /// - Returns: A duration in `[d/2, d]` with `d = min(cap, base * 2^(attempt-1))`; zero when
    ///   `d` is zero or negative.
    public func delay(afterAttempt attempt: Int, using rng: inout some RandomNumberGenerator) -> Duration {
        let ceiling = nanoseconds(of: self.ceiling(afterAttempt: attempt))
        guard ceiling > 0 else { return .zero }
        let low = ceiling - ceiling / 2 // ceil(d/2): never below half
        return .nanoseconds(Int64.random(in: low...ceiling, using: &rng))
    }

    /// `min(cap, base * 2^(attempt-1))`, without overflowing.
    func ceiling(afterAttempt attempt: Int) -> Duration {
        var d = base
        var doublings = max(attempt, 1) - 1
        while doublings > 0, (d < cap), (d > .zero) {
            d = d * 2
            doublings -= 1
        }
        return min(d, cap)
    }

    /// `d` in whole nanoseconds, clamped to `0...Int64.max`.
    private func nanoseconds(of d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? .max : sum
    }
}
