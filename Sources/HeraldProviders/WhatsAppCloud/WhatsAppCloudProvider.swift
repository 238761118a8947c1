import Foundation
import HeraldCore

/// Settings of a `whatsapp_cloud` channel (Meta's WhatsApp Cloud API), without its secrets.
public struct WhatsAppCloudSettings: Sendable, Equatable {
    /// Graph API root without a trailing slash; default ``defaultBaseURL``.
    public var baseURL: String = WhatsAppCloudSettings.defaultBaseURL
    /// `phone_number_id`: the sending number's id at Meta (also how webhooks find the channel).
    public var phoneNumberID: String
    /// `access_token_env`: the environment variable holding the system-user access token.
    public var accessTokenEnv: String
    /// `app_secret_env`: the environment variable holding the app secret that signs webhooks.
    public var appSecretEnv: String?
    /// `verify_token_env`: the environment variable holding the webhook subscription verify token.
    public var verifyTokenEnv: String?
    /// `waba_id`: the WhatsApp Business Account, whose templates Herald keeps in step
    /// (``WhatsAppTemplateList``); nil when not set.
    public var wabaID: String?
    public var policy = DeliveryPolicy()

    public static let defaultBaseURL = "https://graph.facebook.com/v21.0"
}

extension WhatsAppCloudSettings {
    /// Reads the settings (no secrets: webhooks read these without a token).
    public init(_ settings: SettingsReader) throws(ChannelConfigError) {
        let phoneNumberID = try settings.requiredString("phone_number_id")
        // It goes into the request's URL path.
        try DestinationPolicy.checkPhoneNumberID(phoneNumberID)
        let wabaID = try settings.string("waba_id")
        // It goes into the template list's URL path, like phone_number_id.
        if let wabaID, !((1...32).contains(wabaID.utf8.count) && wabaID.utf8.allSatisfy({ (0x30...0x39).contains($0) })) {
            throw ChannelConfigError(setting: "waba_id", "must be Meta's numeric WhatsApp Business Account id (digits only)")
        }
        self.init(baseURL: try settings.httpURL("base_url") ?? Self.defaultBaseURL,
                  phoneNumberID: phoneNumberID,
                  accessTokenEnv: try settings.requiredString("access_token_env"),
                  appSecretEnv: try settings.string("app_secret_env"),
                  verifyTokenEnv: try settings.string("verify_token_env"),
                  wabaID: wabaID,
                  policy: try settings.deliveryPolicy())
    }
}

/// The access token and webhook secrets of a `whatsapp_cloud` channel, read from the environment.
public struct WhatsAppCloudCredentials: ProviderCredentials {
    public var accessToken: String
    /// Checks `X-Hub-Signature-256` on webhooks; nil when `app_secret_env` is not set.
    public var appSecret: String?
    /// Answers Meta's subscription handshake; nil when `verify_token_env` is not set.
    public var verifyToken: String?
}

/// The `whatsapp_cloud` provider.
public struct WhatsAppCloudProvider: Provider {
    public static let name = "whatsapp_cloud"
    public var kinds: Set<ChannelKind> { [.whatsapp] }

    public func configure(_ settings: SettingsReader, kind: ChannelKind,
                          environment: ProviderEnvironment) throws(ChannelConfigError) -> any ConfiguredChannel {
        let parsed = try WhatsAppCloudSettings(settings)
        // The access token goes with every request: only to Meta, or to a host ops listed.
        try environment.destinations.checkURL(parsed.baseURL, officialHost: DestinationPolicy.whatsAppCloudHost, setting: "base_url")
        let credentials = WhatsAppCloudCredentials(
            accessToken: try environment.secret(parsed.accessTokenEnv, setting: "access_token_env"),
            appSecret: try settings.secret("app_secret_env", in: environment),
            verifyToken: try settings.secret("verify_token_env", in: environment))
        return WhatsAppCloudChannel(settings: parsed, credentials: credentials, timeout: environment.requestTimeout)
    }
}

/// A configured `whatsapp_cloud` channel.
public struct WhatsAppCloudChannel: ConfiguredChannel, CustomStringConvertible {
    public let settings: WhatsAppCloudSettings
    let credentials: WhatsAppCloudCredentials
    let timeout: Duration

    public var policy: DeliveryPolicy { settings.policy }

    public func request(for message: OutgoingMessage) throws(MessageBuildError) -> ProviderRequest {
        .http(try WhatsAppCloud.request(for: message, settings: settings, credentials: credentials, timeout: timeout))
    }

    /// An audio with a body goes as two requests: see ``WhatsAppCloud/parts(of:)``.
    public func requests(for message: OutgoingMessage) throws(MessageBuildError) -> [ProviderRequest] {
        var requests: [ProviderRequest] = []
        for part in WhatsAppCloud.parts(of: message) { requests.append(try request(for: part)) }
        return requests
    }

    public func classify(_ answer: ProviderAnswer, for request: ProviderRequest, now: Date) -> DeliveryOutcome {
        answer.httpOutcome(provider: WhatsAppCloudProvider.name, now: now) { WhatsAppCloud.classify($0, now: $1) }
    }

    public var description: String { "WhatsAppCloudChannel(\(settings.phoneNumberID), <redacted>)" }
}
