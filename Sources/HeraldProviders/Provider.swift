import Foundation
import HeraldCore
import HeraldTransport

/// A sending service Herald can deliver through (`channels.provider`): Meta's WhatsApp Cloud API,
/// Twilio, an SMTP relay, the sandbox.
///
/// A provider knows three things and nothing else does:
/// 1. which settings a channel of it needs, and whether they are usable
///    (``configure(_:kind:environment:)``: the one validator, run by the scheduler before a
///    broadcast starts and by each worker before it sends, so a broadcast starts only if a worker
///    can send it);
/// 2. how a rendered message becomes a request (``ConfiguredChannel/request(for:)``);
/// 3. what the provider's answer means (``ConfiguredChannel/classify(_:for:now:)``).
///
/// Adding a provider is one folder beside the others and one line in
/// ``ProviderRegistry/standard``; the worker and the scheduler never switch on a provider's name.
public protocol Provider: Sendable {
    /// The name in `channels.provider`.
    static var name: String { get }
    /// The channel kinds it sends.
    var kinds: Set<ChannelKind> { get }
    /// Parses and checks a channel's settings and reads the secrets they name.
    ///
    /// - Parameters:
    ///   - settings: The channel's `settings` object.
    ///   - kind: The channel's kind, already known to be one of ``kinds``.
    ///   - environment: Where secrets are read, and the process-wide settings requests need.
    /// - Throws: ``ChannelConfigError`` naming the setting at fault.
    func configure(_ settings: SettingsReader, kind: ChannelKind,
                   environment: ProviderEnvironment) throws(ChannelConfigError) -> any ConfiguredChannel
}

extension Provider {
    /// The name in `channels.provider`.
    public var name: String { Self.name }
}

/// The secrets a configured channel holds (tokens, passwords). Their `description` names the
/// type and nothing else, so a credential printed by mistake never reaches a log.
public protocol ProviderCredentials: Sendable, Equatable, CustomStringConvertible {}

extension ProviderCredentials {
    /// Redacted: secrets never reach logs.
    public var description: String { "\(Self.self)(<redacted>)" }
}

/// A channel whose settings were checked and whose secrets were read: ready to turn messages
/// into requests and answers into outcomes. Cheap to keep per broadcast; holds secrets, so its
/// `description` (where a type gives one) must redact them.
public protocol ConfiguredChannel: Sendable {
    /// Retries and ambiguity, from the channel's settings.
    var policy: DeliveryPolicy { get }
    /// A per-contact unsubscribe URL with personalization tags that the channel's settings give
    /// (the smtp `unsubscribe_url` setting), to be rendered into ``OutgoingMessage`` content.
    var unsubscribeURLTemplate: String? { get }
    /// The request that sends `message`.
    ///
    /// - Throws: ``MessageBuildError`` when the message cannot be written for this provider
    ///   (wrong content kind, an address or header that cannot be written safely).
    func request(for message: OutgoingMessage) throws(MessageBuildError) -> ProviderRequest
    /// The requests that send `message`, in the order they must go: one for almost every message
    /// (the default, ``request(for:)``). A provider that cannot carry some content in one request
    /// returns several (WhatsApp: an audio takes no caption, so its body follows as a text).
    ///
    /// The worker sends one part per claim, the next only after the one before was accepted and
    /// recorded, so an accepted part is never sent again (`herald.messages.part_provider_message_ids`),
    /// each part takes a token of the channel's rate, and the message is `sent` when its last part
    /// is accepted (its provider id is the last part's), `failed` when any part fails for good.
    ///
    /// - Throws: ``MessageBuildError`` as ``request(for:)``.
    func requests(for message: OutgoingMessage) throws(MessageBuildError) -> [ProviderRequest]
    /// What the provider's answer to `request` means for the message.
    ///
    /// - Parameters:
    ///   - answer: What came back.
    ///   - request: The request it answers (from ``request(for:)``).
    ///   - now: When it came back, to measure an HTTP-date `Retry-After` against.
    func classify(_ answer: ProviderAnswer, for request: ProviderRequest, now: Date) -> DeliveryOutcome
}

extension ConfiguredChannel {
    public var unsubscribeURLTemplate: String? { nil }

    public func requests(for message: OutgoingMessage) throws(MessageBuildError) -> [ProviderRequest] {
        [try request(for: message)]
    }
}

/// How a channel's failed sends are retried (settings `max_attempts`, `retry_ambiguous`).
public struct DeliveryPolicy: Sendable, Equatable {
    /// Sends per message before a retryable failure becomes final (≥ 1).
    public var maxAttempts: Int
    /// Whether a send whose fate is unknown (a timeout after the request left) is tried again,
    /// accepting a rare duplicate rather than a lost message.
    public var retryAmbiguous: Bool

    public init(maxAttempts: Int = 5, retryAmbiguous: Bool = true) {
        self.maxAttempts = maxAttempts
        self.retryAmbiguous = retryAmbiguous
    }
}

/// One request to a provider.
public enum ProviderRequest: Sendable {
    /// An HTTP call (WhatsApp Cloud API, Twilio).
    case http(HTTPRequest)
    /// A mail handed to an SMTP relay.
    case mail(SMTPMail)
    /// No network: answered locally after `latency` with `outcome` (the sandbox). The sender
    /// waits on its own clock, side by side with real requests.
    case simulated(latency: Duration, outcome: DeliveryOutcome)
}

/// What came back for a ``ProviderRequest``.
public enum ProviderAnswer: Sendable {
    /// The HTTP response, whatever its status.
    case http(HTTPResponse)
    /// The SMTP relay accepted the mail.
    case mailAccepted
    /// The request failed below the provider's protocol (connection, TLS, timeout) or the SMTP
    /// relay rejected the mail.
    case transportFailed(TransportError)
    /// The simulated outcome of a ``ProviderRequest/simulated(latency:outcome:)`` request.
    case simulated(DeliveryOutcome)
}

extension ProviderAnswer {
    /// The outcome of an HTTP provider's request: the response as `read` classifies it, a
    /// transport failure by what it proves (nothing sent, or maybe sent).
    func httpOutcome(provider: String, now: Date, read: (HTTPResponse, Date) -> DeliveryOutcome) -> DeliveryOutcome {
        switch self {
        case .http(let response): read(response, now)
        case .transportFailed(let error): DeliveryOutcome.classify(transportError: error)
        case .mailAccepted, .simulated: .permanent(code: nil, message: "\(provider) got an answer of another provider")
        }
    }
}

/// What a provider may read from the `herald` process: the secrets that `*_env` settings name,
/// and the process-wide settings that requests need.
public struct ProviderEnvironment: Sendable {
    /// The process's environment variables (injected, so tests need not set real ones).
    public var variables: [String: String]
    /// `HERALD_PUBLIC_URL`: where providers post callbacks (Twilio's `StatusCallback`).
    public var publicURL: String?
    /// Whole-transfer timeout of one request.
    public var requestTimeout: Duration
    /// Where secrets may go: the variables a `*_env` may name, the hosts a channel may reach
    /// (`HERALD_ALLOWED_HOSTS`).
    public var destinations: DestinationPolicy

    public init(variables: [String: String], publicURL: String? = nil, requestTimeout: Duration = .seconds(15)) {
        self.variables = variables
        self.publicURL = publicURL ?? variables["HERALD_PUBLIC_URL"].flatMap { $0.isEmpty ? nil : $0 }
        self.requestTimeout = requestTimeout
        self.destinations = DestinationPolicy(allowedHostsVariable: variables["HERALD_ALLOWED_HOSTS"])
    }

    /// The secret in the variable that `setting` names.
    ///
    /// - Throws: ``ChannelConfigError`` when the variable is unset or empty (an empty secret is far
    ///   more often a deployment mistake than a real value).
    public func secret(_ variable: String, setting: String) throws(ChannelConfigError) -> String {
        try destinations.checkSecretVariable(variable, setting: setting)
        guard let value = variables[variable] else {
            throw ChannelConfigError(setting: setting, "names environment variable \(variable), which is not set")
        }
        guard !value.isEmpty else {
            throw ChannelConfigError(setting: setting, "names environment variable \(variable), which is empty")
        }
        return value
    }
}
