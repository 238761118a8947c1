import Foundation
import HeraldCore

/// Settings of a `sandbox` channel: no network, for demos and benchmarks.
public struct SandboxSettings: Sendable, Equatable {
    /// `latency_ms` (default 0, at most 60,000): how long a simulated send takes.
    public var latencyMs: Int
    /// `failure_rate` in 0...1 (default 0): the share of messages that fail permanently.
    public var failureRate: Double
    public var policy: DeliveryPolicy
    /// `phone_number_id` and `app_secret_env`, both or neither: how the simulated delivery receipts
    /// of `herald demo`'s receipt emitter name and sign themselves (see ``SandboxReceipts``). The sends
    /// themselves never use them.
    public var receipts: SandboxReceiptIdentity?

    public init(latencyMs: Int = 0, failureRate: Double = 0, policy: DeliveryPolicy = DeliveryPolicy(),
                receipts: SandboxReceiptIdentity? = nil) {
        self.latencyMs = latencyMs
        self.failureRate = failureRate
        self.policy = policy
        self.receipts = receipts
    }

    /// Reads the settings.
    public init(_ settings: SettingsReader) throws(ChannelConfigError) {
        let rate = try settings.number("failure_rate") ?? 0
        guard (0...1).contains(rate) else {
            throw ChannelConfigError(setting: "failure_rate", "must be a number from 0 to 1")
        }
        let phoneNumberID = try settings.string("phone_number_id")
        let appSecretEnv = try settings.string("app_secret_env")
        var receipts: SandboxReceiptIdentity?
        switch (phoneNumberID, appSecretEnv) {
        case (let phone?, let secret?): receipts = SandboxReceiptIdentity(phoneNumberID: phone, appSecretEnv: secret)
        case (nil, nil): receipts = nil
        case (nil, _?): throw ChannelConfigError(setting: "phone_number_id", "is required with \"app_secret_env\" (the sandbox's receipts name it)")
        case (_?, nil): throw ChannelConfigError(setting: "app_secret_env", "is required with \"phone_number_id\" (it signs the sandbox's receipts)")
        }
        self.init(latencyMs: try settings.integer("latency_ms", in: 0...60_000) ?? 0, failureRate: rate,
                  policy: try settings.deliveryPolicy(), receipts: receipts)
    }
}

/// The `sandbox` provider: sends every kind, makes no request, and answers each message after
/// `latency_ms`, failing a `failure_rate` share permanently.
public struct SandboxProvider: Provider {
    public static let name = "sandbox"
    public var kinds: Set<ChannelKind> { Set(ChannelKind.allCases) }
    /// Draws a number in `0..<1` deciding each simulated failure (seeded in tests).
    let random: @Sendable () -> Double

    public init(random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.random = random
    }

    public func configure(_ settings: SettingsReader, kind: ChannelKind,
                          environment: ProviderEnvironment) throws(ChannelConfigError) -> any ConfiguredChannel {
        SandboxChannel(settings: try SandboxSettings(settings), random: random)
    }
}

/// A configured `sandbox` channel.
public struct SandboxChannel: ConfiguredChannel {
    public let settings: SandboxSettings
    let random: @Sendable () -> Double

    public var policy: DeliveryPolicy { settings.policy }

    /// A simulated send: a ``SandboxSettings/failureRate`` share fails permanently, the rest is
    /// accepted as `sandbox-{messageID}`, after ``SandboxSettings/latencyMs``.
    public func request(for message: OutgoingMessage) throws(MessageBuildError) -> ProviderRequest {
        let outcome: DeliveryOutcome
        if settings.failureRate > 0, random() < settings.failureRate {
            outcome = .permanent(code: "sandbox", message: "simulated failure (failure_rate \(settings.failureRate))")
        } else {
            outcome = .accepted(providerMessageID: "sandbox-\(message.messageID)")
        }
        return .simulated(latency: .milliseconds(settings.latencyMs), outcome: outcome)
    }

    public func classify(_ answer: ProviderAnswer, for request: ProviderRequest, now: Date) -> DeliveryOutcome {
        guard case .simulated(let outcome) = answer else {
            return .permanent(code: nil, message: "sandbox got an answer of another provider")
        }
        return outcome
    }
}
