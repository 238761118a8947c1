/// The `sandbox` provider: no network; for demos and benchmarks.
public enum Sandbox {
    /// Decides a simulated send: a ``SandboxSettings/failureRate`` share fails permanently, the
    /// rest is accepted as `sandbox-{messageID}`. The caller waits ``SandboxSettings/latencyMs``
    /// on its own clock first.
    ///
    /// - Parameters:
    ///   - message: The message "sent".
    ///   - settings: The channel's settings.
    ///   - generator: The randomness deciding failures (inject a seeded one in tests).
    public static func outcome(for message: OutgoingMessage, settings: SandboxSettings,
                               using generator: inout some RandomNumberGenerator) -> DeliveryOutcome {
        if settings.failureRate > 0, Double.random(in: 0..<1, using: &generator) < settings.failureRate {
            return .permanent(code: "sandbox", message: "simulated failure (failure_rate \(settings.failureRate))")
        }
        return .accepted(providerMessageID: "sandbox-\(message.messageID)")
    }

    /// The simulated send time.
    public static func latency(_ settings: SandboxSettings) -> Duration {
        .milliseconds(settings.latencyMs)
    }
}
