import Foundation
import HeraldCore

/// Settings of an `smtp` channel, without its login.
public struct SMTPSettings: Sendable, Equatable {
    /// `url`: `smtps://host:465` (implicit TLS) or `smtp://host:587` (STARTTLS when offered).
    public var url: String
    /// `from`: `Name <addr>` or `addr`, as written.
    public var from: String
    /// `username_env`: the environment variable holding the login name (log in when set).
    public var usernameEnv: String?
    /// `password_env`: the environment variable holding the password.
    public var passwordEnv: String?
    /// `require_tls` (default false): with `smtp://`, refuse to send unless STARTTLS succeeds.
    public var requireTLS = false
    /// `ca_file`: a PEM file of certificate authorities to verify the server with, for a relay
    /// whose certificate a private CA signed; by default the system's trust store is used.
    public var caFile: String?
    /// `unsubscribe_url`: the personalized unsubscribe URL *template* (may hold tags), rendered
    /// per contact into the mail's `List-Unsubscribe`.
    public var unsubscribeURL: String?
    /// `max_attachment_bytes`: the most a broadcast's attachments may weigh together, before
    /// encoding (default 10 MiB, at most 25 MiB, a common relay limit once base64 adds its third).
    public var maxAttachmentBytes = SMTPSettings.defaultMaxAttachmentBytes
    public var policy = DeliveryPolicy()

    /// The default ``maxAttachmentBytes``: 10 MiB.
    public static let defaultMaxAttachmentBytes = 10 << 20
}

extension SMTPSettings {
    /// Reads the settings.
    public init(_ settings: SettingsReader) throws(ChannelConfigError) {
        let url = try settings.requiredString("url")
        let lower = url.lowercased()
        let host = lower.hasPrefix("smtps://") ? url.dropFirst(8) : lower.hasPrefix("smtp://") ? url.dropFirst(7) : ""
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace }) else {
            throw ChannelConfigError(setting: "url", "must start with smtp:// or smtps://")
        }
        let from = try settings.requiredString("from")
        guard MailAddress(parsing: from) != nil else {
            throw ChannelConfigError(setting: "from", "must be \"Name <addr@domain>\" or \"addr@domain\"")
        }
        self.init(url: url, from: from,
                  usernameEnv: try settings.string("username_env"),
                  passwordEnv: try settings.string("password_env"),
                  requireTLS: try settings.bool("require_tls") ?? false,
                  caFile: try settings.string("ca_file"),
                  unsubscribeURL: try settings.string("unsubscribe_url"),
                  maxAttachmentBytes: try settings.integer("max_attachment_bytes", in: 1...(25 << 20))
                      ?? SMTPSettings.defaultMaxAttachmentBytes,
                  policy: try settings.deliveryPolicy())
    }
}

/// The `smtp` provider.
public struct SMTPProvider: Provider {
    public static let name = "smtp"
    public var kinds: Set<ChannelKind> { [.email] }

    public func configure(_ settings: SettingsReader, kind: ChannelKind,
                          environment: ProviderEnvironment) throws(ChannelConfigError) -> any ConfiguredChannel {
        var parsed = try SMTPSettings(settings)
        // The login and every recipient's mail go there: only to a relay ops listed.
        try environment.destinations.checkMailURL(parsed.url, setting: "url")
        // Consent (issue 19): without its own unsubscribe_url, Herald's one-click link when configured.
        if parsed.unsubscribeURL == nil, environment.unsubscribeLinks != nil { parsed.unsubscribeURL = UnsubscribeLinks.tag }
        let credentials = SMTPCredentials(username: try settings.secret("username_env", in: environment),
                                          password: try settings.secret("password_env", in: environment))
        return SMTPChannel(settings: parsed, credentials: credentials, timeout: environment.requestTimeout)
    }
}

/// The SMTP login of an `smtp` channel, read from the environment; both nil means no login.
public struct SMTPCredentials: ProviderCredentials {
    public var username: String?
    public var password: String?
}

/// A configured `smtp` channel.
public struct SMTPChannel: ConfiguredChannel, CustomStringConvertible {
    public let settings: SMTPSettings
    let credentials: SMTPCredentials
    let timeout: Duration

    public var policy: DeliveryPolicy { settings.policy }
    public var unsubscribeURLTemplate: String? { settings.unsubscribeURL }

    public func request(for message: OutgoingMessage) throws(MessageBuildError) -> ProviderRequest {
        .mail(try SMTP.mail(for: message, settings: settings, credentials: credentials, timeout: timeout))
    }

    public func classify(_ answer: ProviderAnswer, for request: ProviderRequest, now: Date) -> DeliveryOutcome {
        guard case .mail(let mail) = request else {
            return .permanent(code: nil, message: "smtp got an answer to a request of another provider")
        }
        switch answer {
        case .mailAccepted: return SMTP.classify(nil, messageID: mail.messageID)
        case .transportFailed(let error): return SMTP.classify(error, messageID: mail.messageID)
        case .http, .simulated: return .permanent(code: nil, message: "smtp got an answer of another provider")
        }
    }

    public var description: String { "SMTPChannel(\(settings.url), <redacted>)" }
}
