import Foundation
import HeraldCore

/// Settings of a `twilio` channel (Twilio Programmable Messaging, SMS), without its secret.
public struct TwilioSettings: Sendable, Equatable {
    /// API root without a trailing slash; default ``defaultBaseURL``.
    public var baseURL: String = TwilioSettings.defaultBaseURL
    /// `account_sid` (`AC…`): the account, the basic-auth user, and how webhooks find the channel.
    public var accountSID: String
    /// `auth_token_env`: the environment variable holding the auth token.
    public var authTokenEnv: String
    /// `from` and `messaging_service_sid`: whom the messages come from. Twilio needs at least
    /// one of the two, so a channel without either cannot be represented.
    public var sender: TwilioSender
    /// `status_callback_url`: where Twilio posts status callbacks. When nil, callers build it
    /// from `HERALD_PUBLIC_URL` (see ``statusCallback(publicURL:)``).
    public var statusCallback: String?
    public var policy = DeliveryPolicy()

    public static let defaultBaseURL = "https://api.twilio.com"
}

extension TwilioSettings {
    /// Reads the settings (no secret: webhooks read these to find the channel).
    public init(_ settings: SettingsReader) throws(ChannelConfigError) {
        let sender: TwilioSender
        switch (try settings.string("from"), try settings.string("messaging_service_sid")) {
        case let (from?, service?): sender = .numberOfService(from, sid: service)
        case let (from?, nil): sender = .number(from)
        case let (nil, service?): sender = .messagingService(sid: service)
        case (nil, nil): throw ChannelConfigError(setting: "from", "or \"messaging_service_sid\" is required")
        }
        let accountSID = try settings.requiredString("account_sid")
        // It goes into the request's URL path.
        try DestinationPolicy.checkAccountSID(accountSID)
        self.init(baseURL: try settings.httpURL("base_url") ?? Self.defaultBaseURL,
                  accountSID: accountSID,
                  authTokenEnv: try settings.requiredString("auth_token_env"),
                  sender: sender,
                  statusCallback: try settings.httpURL("status_callback_url"),
                  policy: try settings.deliveryPolicy())
    }

    /// The status callback URL to send: `status_callback_url` when set, else
    /// `{publicURL}/webhooks/twilio` when a public URL is known, else nil (no callbacks).
    public func statusCallback(publicURL: String?) -> String? {
        if let statusCallback { return statusCallback }
        guard var base = publicURL, !base.isEmpty else { return nil }
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/webhooks/twilio"
    }
}

/// Whom a `twilio` channel's messages come from.
public enum TwilioSender: Sendable, Equatable {
    /// `from` alone: this number or alphanumeric sender id.
    case number(String)
    /// `messaging_service_sid` alone (`MG…`): Twilio picks a sender from the service's pool.
    case messagingService(sid: String)
    /// Both: this sender of the service's pool, with the service's features.
    case numberOfService(String, sid: String)

    /// The request's `From`, when there is one.
    public var from: String? {
        switch self {
        case .number(let from), .numberOfService(let from, _): from
        case .messagingService: nil
        }
    }

    /// The request's `MessagingServiceSid`, when there is one.
    public var messagingServiceSID: String? {
        switch self {
        case .messagingService(let sid), .numberOfService(_, let sid): sid
        case .number: nil
        }
    }
}

/// The auth token of a `twilio` channel, read from the environment.
public struct TwilioCredentials: ProviderCredentials {
    public var authToken: String
}

/// The `twilio` provider.
public struct TwilioProvider: Provider {
    public static let name = "twilio"
    public var kinds: Set<ChannelKind> { [.sms] }

    public func configure(_ settings: SettingsReader, kind: ChannelKind,
                          environment: ProviderEnvironment) throws(ChannelConfigError) -> any ConfiguredChannel {
        let parsed = try TwilioSettings(settings)
        // The auth token goes with every request: only to Twilio, or to a host ops listed.
        try environment.destinations.checkURL(parsed.baseURL, officialHost: DestinationPolicy.twilioHost, setting: "base_url")
        let credentials = TwilioCredentials(authToken: try environment.secret(parsed.authTokenEnv, setting: "auth_token_env"))
        return TwilioChannel(settings: parsed, credentials: credentials, publicURL: environment.publicURL,
                             timeout: environment.requestTimeout)
    }
}

/// A configured `twilio` channel.
public struct TwilioChannel: ConfiguredChannel, CustomStringConvertible {
    public let settings: TwilioSettings
    let credentials: TwilioCredentials
    let publicURL: String?
    let timeout: Duration

    public var policy: DeliveryPolicy { settings.policy }

    public func request(for message: OutgoingMessage) throws(MessageBuildError) -> ProviderRequest {
        .http(try Twilio.request(for: message, settings: settings, credentials: credentials, publicURL: publicURL,
                                 timeout: timeout))
    }

    public func classify(_ answer: ProviderAnswer, for request: ProviderRequest, now: Date) -> DeliveryOutcome {
        answer.httpOutcome(provider: TwilioProvider.name, now: now) { Twilio.classify($0, now: $1) }
    }

    public var description: String { "TwilioChannel(\(settings.accountSID), <redacted>)" }
}
