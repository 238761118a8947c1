import HeraldPostgres
import HeraldProviders
@testable import HeraldServices
@testable import HeraldStore
import HeraldTesting
import Testing

/// A channel whose settings a worker could not use, and the exact error its broadcast must get.
struct BadChannel: Sendable, CustomTestStringConvertible {
    var name: String
    var kind: String
    var provider: String
    var settings: String
    var error: String
    var testDescription: String { name }
}

/// The scheduler and the workers check a channel with the same validator: a broadcast starts only
/// if a worker can send it, and fails with the words the worker would use.
@Suite("Scheduler: channels a worker cannot use")
struct ChannelValidationTests {
    typealias F = SchedulerFixtures

    /// The scheduler's and the worker's environment in these tests: `EMPTY` is set but empty.
    static let environment = ProviderEnvironment(variables: ["WA_TOKEN": "wa", "TW_TOKEN": "tw", "EMPTY": "",
                                                                   "HERALD_ALLOWED_HOSTS": "127.0.0.1"])

    static let wa = #""phone_number_id": "1055", "access_token_env": "WA_TOKEN""#
    static let tw = #""account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token_env": "TW_TOKEN""#
    static let mail = #""url": "smtp://127.0.0.1:2525""#

    static let cases: [BadChannel] = [
        BadChannel(name: "whatsapp base_url without a scheme", kind: "whatsapp", provider: "whatsapp_cloud",
                   settings: #"{\#(wa), "base_url": "graph.facebook.com"}"#,
                   error: #"channel "c": setting "base_url" must be an http:// or https:// URL"#),
        BadChannel(name: "whatsapp max_attempts as a string", kind: "whatsapp", provider: "whatsapp_cloud",
                   settings: #"{\#(wa), "max_attempts": "5"}"#,
                   error: #"channel "c": setting "max_attempts" must be an integer from 1 to 100"#),
        BadChannel(name: "whatsapp token variable unset", kind: "whatsapp", provider: "whatsapp_cloud",
                   settings: #"{"phone_number_id": "1055", "access_token_env": "NOT_SET_TOKEN"}"#,
                   error: #"channel "c": setting "access_token_env" names environment variable NOT_SET_TOKEN, which is not set"#),
        BadChannel(name: "whatsapp app secret variable empty", kind: "whatsapp", provider: "whatsapp_cloud",
                   settings: #"{\#(wa), "app_secret_env": "EMPTY"}"#,
                   error: #"channel "c": setting "app_secret_env" names environment variable EMPTY, which is empty"#),
        BadChannel(name: "whatsapp phone_number_id as a number", kind: "whatsapp", provider: "whatsapp_cloud",
                   settings: #"{"phone_number_id": 1055, "access_token_env": "WA_TOKEN"}"#,
                   error: #"channel "c": setting "phone_number_id" must be a string"#),
        BadChannel(name: "twilio without a sender", kind: "sms", provider: "twilio",
                   settings: #"{\#(tw)}"#,
                   error: #"channel "c": setting "from" or "messaging_service_sid" is required"#),
        BadChannel(name: "twilio callback not http", kind: "sms", provider: "twilio",
                   settings: #"{\#(tw), "from": "+15005550006", "status_callback_url": "ftp://h.example/cb"}"#,
                   error: #"channel "c": setting "status_callback_url" must be an http:// or https:// URL"#),
        BadChannel(name: "twilio retry_ambiguous as a string", kind: "sms", provider: "twilio",
                   settings: #"{\#(tw), "from": "+15005550006", "retry_ambiguous": "yes"}"#,
                   error: #"channel "c": setting "retry_ambiguous" must be true or false"#),
        BadChannel(name: "twilio without auth_token_env", kind: "sms", provider: "twilio",
                   settings: #"{"account_sid": "AC0123456789abcdef0123456789abcdef", "from": "+15005550006"}"#,
                   error: #"channel "c": setting "auth_token_env" is required"#),
        BadChannel(name: "smtp from without an address", kind: "email", provider: "smtp",
                   settings: #"{\#(mail), "from": "Acme Shop"}"#,
                   error: #"channel "c": setting "from" must be "Name <addr@domain>" or "addr@domain""#),
        BadChannel(name: "smtp url over https", kind: "email", provider: "smtp",
                   settings: #"{"url": "https://mail.example.com", "from": "shop@example.com"}"#,
                   error: #"channel "c": setting "url" must start with smtp:// or smtps://"#),
        BadChannel(name: "smtp password variable unset", kind: "email", provider: "smtp",
                   settings: #"{\#(mail), "from": "shop@example.com", "username_env": "WA_TOKEN", "password_env": "NOT_SET_PASS"}"#,
                   error: #"channel "c": setting "password_env" names environment variable NOT_SET_PASS, which is not set"#),
        BadChannel(name: "smtp require_tls as a string", kind: "email", provider: "smtp",
                   settings: #"{\#(mail), "from": "shop@example.com", "require_tls": "true"}"#,
                   error: #"channel "c": setting "require_tls" must be true or false"#),
        BadChannel(name: "whatsapp token read from DATABASE_URL", kind: "whatsapp", provider: "whatsapp_cloud",
                   settings: #"{"phone_number_id": "1055", "access_token_env": "DATABASE_URL", "base_url": "http://127.0.0.1:1/v21.0"}"#,
                   error: #"channel "c": setting "access_token_env" names DATABASE_URL, which is Herald's own configuration (DATABASE_URL, PG*, HERALD_*), not a provider secret: name a variable of its own"#),
        BadChannel(name: "whatsapp token sent to an unlisted host", kind: "whatsapp", provider: "whatsapp_cloud",
                   settings: #"{\#(wa), "base_url": "http://evil.example/v21.0"}"#,
                   error: #"channel "c": host not allowed: evil.example (channel setting "base_url"; ops may list it in HERALD_ALLOWED_HOSTS)"#),
        BadChannel(name: "twilio token sent to an unlisted host", kind: "sms", provider: "twilio",
                   settings: #"{\#(tw), "from": "+15005550006", "base_url": "https://api.twilio.com.evil.example"}"#,
                   error: #"channel "c": host not allowed: api.twilio.com.evil.example (channel setting "base_url"; ops may list it in HERALD_ALLOWED_HOSTS)"#),
        BadChannel(name: "smtp relay not listed", kind: "email", provider: "smtp",
                   settings: #"{"url": "smtp://relay.evil.example:587", "from": "shop@example.com"}"#,
                   error: #"channel "c": host not allowed: relay.evil.example (channel setting "url"; ops may list it in HERALD_ALLOWED_HOSTS)"#),
        BadChannel(name: "twilio account_sid that would change the URL path", kind: "sms", provider: "twilio",
                   settings: #"{"account_sid": "AC1/../../x", "auth_token_env": "TW_TOKEN", "from": "+15005550006"}"#,
                   error: #"channel "c": setting "account_sid" must be "AC" followed by 32 hexadecimal digits"#),
        BadChannel(name: "sandbox failure_rate above 1", kind: "sms", provider: "sandbox",
                   settings: #"{"failure_rate": 2}"#,
                   error: #"channel "c": setting "failure_rate" must be a number from 0 to 1"#),
        BadChannel(name: "sandbox latency_ms fractional", kind: "email", provider: "sandbox",
                   settings: #"{"latency_ms": 1.5}"#,
                   error: #"channel "c": setting "latency_ms" must be an integer from 0 to 60000"#),
    ]

    @Test("a broadcast on a channel a worker cannot use ends failed at validation, never sending", arguments: cases)
    func failsAtValidation(_ bad: BadChannel) async throws {
        try await withTestConnection { db, c in
            let contact = try await F.contact(c)
            let channel = try await F.channel(c, name: "c", kind: bad.kind, provider: bad.provider, settings: bad.settings)
            let id = try await F.broadcast(c, channel: channel, subject: bad.kind == "email" ? "S" : nil, contacts: [contact])
            try await F.withScheduler(db, environment: Self.environment) {
                try await F.waitUntil("it fails", timeout: .seconds(30)) { try await F.status(c, id) != "scheduled" }
            }
            #expect(try await F.status(c, id) == "failed")
            #expect(try await F.error(c, id) == bad.error)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.jobs") == 0)
        }
    }

    @Test("the worker refuses such a channel with the scheduler's words", arguments: cases)
    func workerAgrees(_ bad: BadChannel) throws {
        let info = ActiveBroadcast(id: 1, channelID: 1, channelName: "c", kind: bad.kind, provider: bad.provider,
                                   settingsJSON: bad.settings, ratePerSecond: 10, burst: 1, subject: "S", body: "Hi",
                                   htmlBody: nil, templateName: nil, templateLanguage: nil, templateParams: [])
        #expect(throws: BroadcastProblem(bad.error)) { try PreparedBroadcast(info, environment: Self.environment) }
    }

    @Test("the same channel with its faults mended starts and is prepared by a worker")
    func goodChannelStarts() async throws {
        try await withTestConnection { db, c in
            let contact = try await F.contact(c)
            let channel = try await F.channel(c, name: "c", kind: "whatsapp", provider: "whatsapp_cloud", settings: "{\(Self.wa)}")
            let id = try await F.broadcast(c, channel: channel, contacts: [contact])
            try await c.execute("UPDATE herald.contacts SET last_inbound_at = now() WHERE id = \(contact)")
            try await F.runSchedulerUntilStarted(db, c, id, environment: Self.environment)
            #expect(try await F.status(c, id) == "sending")
        }
        let info = ActiveBroadcast(id: 1, channelID: 1, channelName: "c", kind: "whatsapp", provider: "whatsapp_cloud",
                                   settingsJSON: "{\(Self.wa)}", ratePerSecond: 10, burst: 1, subject: nil, body: "Hi",
                                   htmlBody: nil, templateName: nil, templateLanguage: nil, templateParams: [])
        #expect(throws: Never.self) { try PreparedBroadcast(info, environment: Self.environment) }
    }
}
