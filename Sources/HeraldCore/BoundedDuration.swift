/// Turning numbers that come from outside (a provider's header, a database row, a flag) into
/// durations without trapping.
///
/// `Int64(someDouble)` and `Duration.seconds(someDouble)` trap on NaN, on infinities and on values
/// beyond their range; a provider's `Retry-After: 9999999999999` or a rate limiter's wait of 1e20 s
/// must never crash a process. Every such conversion goes through here: the value is clamped to
/// `0...max` (NaN and negative values give zero) before any integer conversion happens.
extension Duration {
    /// The longest wait Herald takes from outside input unless configured otherwise: one hour.
    /// A provider asking for more is almost always wrong (or hostile); a channel paused for longer
    /// would look dead to operators.
    public static let defaultMaximumWait: Duration = .seconds(3600)

    /// `seconds` as a duration, clamped to `0...max`: NaN and negative values give zero, values
    /// above `max` (infinity included) give `max`. Never traps.
    ///
    /// ```swift
    /// Duration.clampedSeconds(1e20)            // 1 hour
    /// Duration.clampedSeconds(.nan)            // zero
    /// Duration.clampedSeconds(0.25, max: .seconds(10))  // 250 ms
    /// ```
    /// - Parameters:
    ///   - seconds: the value read from outside.
    ///   - max: the upper bound (default ``defaultMaximumWait``); a negative bound counts as zero.
    public static func clampedSeconds(_ seconds: Double, max: Duration = .defaultMaximumWait) -> Duration {
        let limit = Swift.max(max, .zero)
        guard seconds > 0 else { return .zero } // also NaN
        let limitSeconds = limit.secondsValue
        // 9e18 < Int64.max: a bound near Int64.max seconds cannot make the conversion below trap.
        guard seconds < limitSeconds, seconds < 9e18 else { return limit }
        let whole = seconds.rounded(.down)
        let nanos = ((seconds - whole) * 1e9).rounded(.up)
        return .seconds(Int64(whole)) + .nanoseconds(Int64(nanos))
    }

    /// `milliseconds` as a duration, clamped like ``clampedSeconds(_:max:)``.
    public static func clampedMilliseconds(_ milliseconds: Double, max: Duration = .defaultMaximumWait) -> Duration {
        clampedSeconds(milliseconds / 1000, max: max)
    }

    /// The duration in seconds, as a `Double` (for SQL binds and metrics).
    public var secondsValue: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
