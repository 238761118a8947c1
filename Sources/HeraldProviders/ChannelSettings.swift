import Foundation

/// A channel's `settings` could not be used: a setting is missing, has the wrong type or value,
/// names an unset environment variable, or the provider does not send the channel's kind.
///
/// The ``description`` names the setting and says what is wrong, e.g.
/// `channel settings: "phone_number_id" is required for provider whatsapp_cloud`. It never holds a
/// secret: only the *names* of environment variables appear in it.
public struct ChannelConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The provider named by the channel, as written (`whatsapp_cloud`, `twilio`, …).
    public var provider: String
    /// The setting at fault, when one is (`"phone_number_id"`), else nil.
    public var setting: String?
    /// The full, human-readable message.
    public var message: String

    public init(provider: String, setting: String?, message: String) {
        self.provider = provider
        self.setting = setting
        self.message = message
    }

    public var description: String { message }
}

/// Settings of a `whatsapp_cloud` channel (Meta's WhatsApp Cloud API).
public struct WhatsAppCloudSettings: Sendable, Equatable {
    /// Graph API root without a trailing slash; default `https://graph.facebook.com/v21.0`.
    public var baseURL: String
    /// `phone_number_id`: the sending number's id at Meta (also how webhooks find the channel).
    public var phoneNumberID: String
    /// `access_token_env`: the environment variable holding the system-user access token.
    public var accessTokenEnv: String
    /// `app_secret_env`: the environment variable holding the app secret that signs webhooks.
    public var appSecretEnv: String?
    /// `verify_token_env`: the environment variable holding the webhook subscription verify token.
    public var verifyTokenEnv: String?
    /// `retry_ambiguous` (default true): retry a send whose fate is unknown (timeout after the
    /// request went out), accepting a rare duplicate rather than a lost message.
    public var retryAmbiguous: Bool
    /// `max_attempts` (default 5): sends per message before a retryable failure becomes final.
    public var maxAttempts: Int

    public static let defaultBaseURL = "https://graph.facebook.com/v21.0"

    public init(baseURL: String = WhatsAppCloudSettings.defaultBaseURL, phoneNumberID: String,
                accessTokenEnv: String, appSecretEnv: String? = nil, verifyTokenEnv: String? = nil,
                retryAmbiguous: Bool = true, maxAttempts: Int = 5) {
        self.baseURL = baseURL
        self.phoneNumberID = phoneNumberID
        self.accessTokenEnv = accessTokenEnv
        self.appSecretEnv = appSecretEnv
        self.verifyTokenEnv = verifyTokenEnv
        self.retryAmbiguous = retryAmbiguous
        self.maxAttempts = maxAttempts
    }

    /// Reads the secrets named by the settings from `environment`.
    ///
    /// - Throws: ``ChannelConfigError`` when `access_token_env`, or `app_secret_env` /
    ///   `verify_token_env` when set, name a variable that is unset or empty.
    public func resolveSecrets(environment: [String: String]) throws -> WhatsAppCloudCredentials {
        let env = SecretLookup(provider: "whatsapp_cloud", environment: environment)
        return WhatsAppCloudCredentials(
            accessToken: try env.required(accessTokenEnv, setting: "access_token_env"),
            appSecret: try appSecretEnv.map { try env.required($0, setting: "app_secret_env") },
            verifyToken: try verifyTokenEnv.map { try env.required($0, setting: "verify_token_env") })
    }
}

/// Settings of a `twilio` channel (Twilio Programmable Messaging, SMS).
public struct TwilioSettings: Sendable, Equatable {
    /// API root without a trailing slash; default `https://api.twilio.com`.
    public var baseURL: String
    /// `account_sid` (`AC…`): the account, the basic-auth user, and how webhooks find the channel.
    public var accountSID: String
    /// `auth_token_env`: the environment variable holding the auth token.
    public var authTokenEnv: String
    /// `from`: the sender number or alphanumeric sender id.
    public var from: String?
    /// `messaging_service_sid` (`MG…`): send through a Messaging Service's sender pool.
    public var messagingServiceSID: String?
    /// `status_callback_url`: where Twilio posts status callbacks. When nil the caller builds it
    /// from `HERALD_PUBLIC_URL` (see ``statusCallback(publicURL:)``).
    public var statusCallback: String?
    /// `retry_ambiguous` (default true), see ``WhatsAppCloudSettings/retryAmbiguous``.
    public var retryAmbiguous: Bool
    /// `max_attempts` (default 5).
    public var maxAttempts: Int

    public static let defaultBaseURL = "https://api.twilio.com"

    public init(baseURL: String = TwilioSettings.defaultBaseURL, accountSID: String, authTokenEnv: String,
                from: String? = nil, messagingServiceSID: String? = nil, statusCallback: String? = nil,
                retryAmbiguous: Bool = true, maxAttempts: Int = 5) {
        self.baseURL = baseURL
        self.accountSID = accountSID
        self.authTokenEnv = authTokenEnv
        self.from = from
        self.messagingServiceSID = messagingServiceSID
        self.statusCallback = statusCallback
        self.retryAmbiguous = retryAmbiguous
        self.maxAttempts = maxAttempts
    }

    /// The status callback URL to send: `status_callback_url` when set, else
    /// `{publicURL}/webhooks/twilio` when a public URL is known, else nil (no callbacks).
    public func statusCallback(publicURL: String?) -> String? {
        if let statusCallback { return statusCallback }
        guard var base = publicURL, !base.isEmpty else { return nil }
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/webhooks/twilio"
    }

    /// Reads the auth token named by `auth_token_env` from `environment`.
    ///
    /// - Throws: ``ChannelConfigError`` when the variable is unset or empty.
    public func resolveSecrets(environment: [String: String]) throws -> TwilioCredentials {
        let env = SecretLookup(provider: "twilio", environment: environment)
        return TwilioCredentials(authToken: try env.required(authTokenEnv, setting: "auth_token_env"))
    }
}

/// Settings of an `smtp` channel.
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
    public var requireTLS: Bool
    /// `ca_file`: a PEM file of certificate authorities to verify the server with, for a relay
    /// whose certificate a private CA signed; by default the system's trust store is used.
    public var caFile: String?
    /// `unsubscribe_url`: the personalized unsubscribe URL *template* (may hold tags); the caller
    /// renders it per contact into ``OutgoingMessage/Content/email(subject:text:html:unsubscribeURL:)``.
    public var unsubscribeURL: String?
    /// `retry_ambiguous` (default true), see ``WhatsAppCloudSettings/retryAmbiguous``.
    public var retryAmbiguous: Bool
    /// `max_attempts` (default 5).
    public var maxAttempts: Int

    public init(url: String, from: String, usernameEnv: String? = nil, passwordEnv: String? = nil,
                requireTLS: Bool = false, caFile: String? = nil, unsubscribeURL: String? = nil,
                retryAmbiguous: Bool = true, maxAttempts: Int = 5) {
        self.url = url
        self.from = from
        self.usernameEnv = usernameEnv
        self.passwordEnv = passwordEnv
        self.requireTLS = requireTLS
        self.caFile = caFile
        self.unsubscribeURL = unsubscribeURL
        self.retryAmbiguous = retryAmbiguous
        self.maxAttempts = maxAttempts
    }

    /// Reads the login named by `username_env` and `password_env` from `environment`.
    ///
    /// - Throws: ``ChannelConfigError`` when a named variable is unset or empty (an empty
    ///   password is refused too: it is far more often a deployment mistake than a real password).
    public func resolveSecrets(environment: [String: String]) throws -> SMTPCredentials {
        let env = SecretLookup(provider: "smtp", environment: environment)
        return SMTPCredentials(
            username: try usernameEnv.map { try env.required($0, setting: "username_env") },
            password: try passwordEnv.map { try env.required($0, setting: "password_env") })
    }
}

/// Settings of a `sandbox` channel: no network, for demos and benchmarks.
public struct SandboxSettings: Sendable, Equatable {
    /// `latency_ms` (default 0): how long a simulated send takes.
    public var latencyMs: Int
    /// `failure_rate` in 0...1 (default 0): the share of messages that fail permanently.
    public var failureRate: Double
    /// `max_attempts` (default 5).
    public var maxAttempts: Int

    public init(latencyMs: Int = 0, failureRate: Double = 0, maxAttempts: Int = 5) {
        self.latencyMs = latencyMs
        self.failureRate = failureRate
        self.maxAttempts = maxAttempts
    }
}

/// The access token and webhook secrets of a `whatsapp_cloud` channel, read from the environment.
public struct WhatsAppCloudCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessToken: String
    /// Checks `X-Hub-Signature-256` on webhooks; nil when `app_secret_env` is not set.
    public var appSecret: String?
    /// Answers Meta's subscription handshake; nil when `verify_token_env` is not set.
    public var verifyToken: String?

    public init(accessToken: String, appSecret: String? = nil, verifyToken: String? = nil) {
        self.accessToken = accessToken
        self.appSecret = appSecret
        self.verifyToken = verifyToken
    }

    /// Redacted: secrets never reach logs.
    public var description: String { "WhatsAppCloudCredentials(<redacted>)" }
}

/// The auth token of a `twilio` channel, read from the environment.
public struct TwilioCredentials: Sendable, Equatable, CustomStringConvertible {
    public var authToken: String

    public init(authToken: String) {
        self.authToken = authToken
    }

    /// Redacted: secrets never reach logs.
    public var description: String { "TwilioCredentials(<redacted>)" }
}

/// The SMTP login of an `smtp` channel, read from the environment; both nil means no login.
public struct SMTPCredentials: Sendable, Equatable, CustomStringConvertible {
    public var username: String?
    public var password: String?

    public init(username: String? = nil, password: String? = nil) {
        self.username = username
        self.password = password
    }

    /// Redacted: secrets never reach logs.
    public var description: String { "SMTPCredentials(<redacted>)" }
}

/// A channel's provider with its parsed settings.
public enum ProviderConfig: Sendable, Equatable {
    case whatsappCloud(WhatsAppCloudSettings)
    case twilio(TwilioSettings)
    case smtp(SMTPSettings)
    case sandbox(SandboxSettings)

    /// Parses a channel's `provider`, `kind` and `settings` jsonb text.
    ///
    /// Unknown keys are ignored (the admin tool may keep its own notes there); known keys must have
    /// the right type. An empty string or `null` means `{}`.
    ///
    /// - Parameters:
    ///   - provider: `channels.provider`: `whatsapp_cloud`, `twilio`, `smtp` or `sandbox`.
    ///   - kind: `channels.kind`: `whatsapp`, `sms` or `email`; must be the one the provider sends.
    ///   - settingsJSON: `channels.settings` as JSON text.
    /// - Throws: ``ChannelConfigError`` naming the setting at fault.
    public static func parse(provider: String, kind: String, settingsJSON: String) throws -> ProviderConfig {
        let expectedKind: String?
        switch provider {
        case "whatsapp_cloud": expectedKind = "whatsapp"
        case "twilio": expectedKind = "sms"
        case "smtp": expectedKind = "email"
        case "sandbox": expectedKind = nil
        default:
            throw ChannelConfigError(
                provider: provider, setting: nil,
                message: "channel settings: unknown provider \"\(provider)\" (expected whatsapp_cloud, twilio, smtp or sandbox)")
        }
        guard ["whatsapp", "sms", "email"].contains(kind) else {
            throw ChannelConfigError(
                provider: provider, setting: nil,
                message: "channel settings: unknown kind \"\(kind)\" (expected whatsapp, sms or email)")
        }
        if let expectedKind, expectedKind != kind {
            throw ChannelConfigError(
                provider: provider, setting: nil,
                message: "channel settings: provider/kind mismatch: provider \(provider) sends \(expectedKind), but the channel's kind is \(kind)")
        }

        var reader = try SettingsReader(provider: provider, json: settingsJSON)
        switch provider {
        case "whatsapp_cloud":
            return .whatsappCloud(WhatsAppCloudSettings(
                baseURL: try reader.baseURL(default: WhatsAppCloudSettings.defaultBaseURL),
                phoneNumberID: try reader.requiredString("phone_number_id"),
                accessTokenEnv: try reader.requiredString("access_token_env"),
                appSecretEnv: try reader.string("app_secret_env"),
                verifyTokenEnv: try reader.string("verify_token_env"),
                retryAmbiguous: try reader.bool("retry_ambiguous") ?? true,
                maxAttempts: try reader.maxAttempts()))
        case "twilio":
            let from = try reader.string("from")
            let service = try reader.string("messaging_service_sid")
            guard from != nil || service != nil else {
                throw ChannelConfigError(provider: provider, setting: "from",
                                         message: "channel settings: twilio needs \"from\" or \"messaging_service_sid\"")
            }
            let callback = try reader.string("status_callback_url")
            if let callback { try reader.checkHTTPURL(callback, setting: "status_callback_url") }
            return .twilio(TwilioSettings(
                baseURL: try reader.baseURL(default: TwilioSettings.defaultBaseURL),
                accountSID: try reader.requiredString("account_sid"),
                authTokenEnv: try reader.requiredString("auth_token_env"),
                from: from, messagingServiceSID: service, statusCallback: callback,
                retryAmbiguous: try reader.bool("retry_ambiguous") ?? true,
                maxAttempts: try reader.maxAttempts()))
        case "smtp":
            let url = try reader.requiredString("url")
            let host = url.hasPrefix("smtps://") ? url.dropFirst(8) : url.hasPrefix("smtp://") ? url.dropFirst(7) : ""
            guard !host.isEmpty, !host.contains(where: { $0.isWhitespace }) else {
                throw ChannelConfigError(provider: provider, setting: "url",
                                         message: "channel settings: smtp \"url\" must start with smtp:// or smtps://")
            }
            let from = try reader.requiredString("from")
            guard MailAddress(parsing: from) != nil else {
                throw ChannelConfigError(provider: provider, setting: "from",
                                         message: "channel settings: smtp \"from\" must be \"Name <addr@domain>\" or \"addr@domain\"")
            }
            return .smtp(SMTPSettings(
                url: url, from: from,
                usernameEnv: try reader.string("username_env"),
                passwordEnv: try reader.string("password_env"),
                requireTLS: try reader.bool("require_tls") ?? false,
                caFile: try reader.string("ca_file"),
                unsubscribeURL: try reader.string("unsubscribe_url"),
                retryAmbiguous: try reader.bool("retry_ambiguous") ?? true,
                maxAttempts: try reader.maxAttempts()))
        default: // sandbox
            let latency = try reader.integer("latency_ms") ?? 0
            guard latency >= 0 else {
                throw reader.error("latency_ms", "must be an integer ≥ 0")
            }
            let rate = try reader.number("failure_rate") ?? 0
            guard (0...1).contains(rate) else {
                throw reader.error("failure_rate", "must be a number from 0 to 1")
            }
            return .sandbox(SandboxSettings(latencyMs: latency, failureRate: rate,
                                            maxAttempts: try reader.maxAttempts()))
        }
    }

    /// The provider name as stored in `channels.provider`.
    public var provider: String {
        switch self {
        case .whatsappCloud: "whatsapp_cloud"
        case .twilio: "twilio"
        case .smtp: "smtp"
        case .sandbox: "sandbox"
        }
    }

    /// Sends per message before a retryable failure becomes final.
    public var maxAttempts: Int {
        switch self {
        case .whatsappCloud(let s): s.maxAttempts
        case .twilio(let s): s.maxAttempts
        case .smtp(let s): s.maxAttempts
        case .sandbox(let s): s.maxAttempts
        }
    }

    /// Whether a send whose fate is unknown may be retried (the sandbox is never ambiguous).
    public var retryAmbiguous: Bool {
        switch self {
        case .whatsappCloud(let s): s.retryAmbiguous
        case .twilio(let s): s.retryAmbiguous
        case .smtp(let s): s.retryAmbiguous
        case .sandbox: true
        }
    }

    /// Reads the secrets the settings name from `environment` (the `herald` process's
    /// environment, injected so tests need not set real variables).
    ///
    /// - Throws: ``ChannelConfigError`` naming the variable and the setting, e.g.
    ///   `channel settings: environment variable WA_TOKEN named by "access_token_env" is not set`.
    public func resolveSecrets(environment: [String: String]) throws -> ProviderCredentials {
        switch self {
        case .whatsappCloud(let s): .whatsappCloud(try s.resolveSecrets(environment: environment))
        case .twilio(let s): .twilio(try s.resolveSecrets(environment: environment))
        case .smtp(let s): .smtp(try s.resolveSecrets(environment: environment))
        case .sandbox: .sandbox
        }
    }
}

/// The secrets of a channel, matching its ``ProviderConfig`` case.
public enum ProviderCredentials: Sendable, Equatable, CustomStringConvertible {
    case whatsappCloud(WhatsAppCloudCredentials)
    case twilio(TwilioCredentials)
    case smtp(SMTPCredentials)
    case sandbox

    /// Redacted: secrets never reach logs.
    public var description: String {
        switch self {
        case .whatsappCloud(let c): c.description
        case .twilio(let c): c.description
        case .smtp(let c): c.description
        case .sandbox: "SandboxCredentials()"
        }
    }
}

// MARK: - Reading

/// Typed access to a settings object, producing ``ChannelConfigError``s that name the setting.
private struct SettingsReader {
    let provider: String
    let members: [String: JSONValue]

    init(provider: String, json: String) throws {
        self.provider = provider
        let trimmed = json.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty || trimmed == "null" {
            members = [:]
            return
        }
        guard let value = JSONValue.parse(Array(trimmed.utf8)) else {
            throw ChannelConfigError(provider: provider, setting: nil,
                                     message: "channel settings: not valid JSON for provider \(provider)")
        }
        guard case .object(let members) = value else {
            throw ChannelConfigError(provider: provider, setting: nil,
                                     message: "channel settings: must be a JSON object for provider \(provider)")
        }
        self.members = members
    }

    func error(_ setting: String, _ problem: String) -> ChannelConfigError {
        ChannelConfigError(provider: provider, setting: setting,
                           message: "channel settings: \"\(setting)\" \(problem) for provider \(provider)")
    }

    /// A string setting; absent, `null` and `""` all mean "not set".
    func string(_ key: String) throws -> String? {
        switch members[key] {
        case nil, .null: return nil
        case .string(let value):
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty ? nil : trimmed
        default: throw error(key, "must be a string")
        }
    }

    func requiredString(_ key: String) throws -> String {
        guard let value = try string(key) else { throw error(key, "is required") }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        switch members[key] {
        case nil, .null: return nil
        case .bool(let value): return value
        default: throw error(key, "must be true or false")
        }
    }

    func number(_ key: String) throws -> Double? {
        switch members[key] {
        case nil, .null: return nil
        case .number(let value): return value
        default: throw error(key, "must be a number")
        }
    }

    func integer(_ key: String) throws -> Int? {
        switch members[key] {
        case nil, .null: return nil
        case .number(let value):
            guard value.rounded() == value, abs(value) <= 1e12 else { throw error(key, "must be an integer") }
            return Int(value)
        default: throw error(key, "must be an integer")
        }
    }

    func maxAttempts() throws -> Int {
        let value = try integer("max_attempts") ?? 5
        guard value >= 1 else { throw error("max_attempts", "must be an integer ≥ 1") }
        return value
    }

    func checkHTTPURL(_ url: String, setting: String) throws {
        guard url.hasPrefix("https://") || url.hasPrefix("http://"),
              !url.contains(where: { $0.isWhitespace }) else {
            throw error(setting, "must be an http:// or https:// URL")
        }
    }

    /// `base_url`, without trailing slashes.
    mutating func baseURL(default defaultURL: String) throws -> String {
        guard var url = try string("base_url") else { return defaultURL }
        try checkHTTPURL(url, setting: "base_url")
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }
}

/// Looks secrets up by the variable names the settings give.
private struct SecretLookup {
    let provider: String
    let environment: [String: String]

    func required(_ variable: String, setting: String) throws -> String {
        guard let value = environment[variable] else {
            throw ChannelConfigError(
                provider: provider, setting: setting,
                message: "channel settings: environment variable \(variable) named by \"\(setting)\" is not set")
        }
        guard !value.isEmpty else {
            throw ChannelConfigError(
                provider: provider, setting: setting,
                message: "channel settings: environment variable \(variable) named by \"\(setting)\" is empty")
        }
        return value
    }
}
