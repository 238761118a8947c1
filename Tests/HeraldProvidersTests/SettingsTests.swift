import Testing
@testable import HeraldProviders

/// The one validator of a channel: ``ProviderRegistry/configure(provider:kind:settingsJSON:environment:)``.
@Suite struct SettingsTests {
    static let environment = ProviderEnvironment(variables: ["WA_TOKEN": "tok", "T": "t", "TW": "tw", "U": "u", "P": "p",
                                                                   "HERALD_ALLOWED_HOSTS": "127.0.0.1,m,mail.example.com"])

    private func configureError(_ provider: String, _ kind: String, _ json: String,
                                environment: ProviderEnvironment = SettingsTests.environment) -> String? {
        do {
            _ = try ProviderRegistry.standard.configure(provider: provider, kind: kind, settingsJSON: json, environment: environment)
            return nil
        } catch {
            return error.description
        }
    }

    private func configure(_ provider: String, _ kind: String, _ json: String) throws -> any ConfiguredChannel {
        try ProviderRegistry.standard.configure(provider: provider, kind: kind, settingsJSON: json, environment: Self.environment)
    }

    @Test("whatsapp_cloud with only required settings takes the defaults")
    func whatsAppDefaults() throws {
        let channel = try #require(try configure("whatsapp_cloud", "whatsapp",
                                                 #"{"phone_number_id":"106540352242922","access_token_env":"WA_TOKEN"}"#) as? WhatsAppCloudChannel)
        #expect(channel.settings == WhatsAppCloudSettings(
            baseURL: "https://graph.facebook.com/v21.0", phoneNumberID: "106540352242922", accessTokenEnv: "WA_TOKEN"))
        #expect(channel.policy == DeliveryPolicy(maxAttempts: 5, retryAmbiguous: true))
    }

    @Test("whatsapp_cloud reads every setting and trims base_url's trailing slash")
    func whatsAppAll() throws {
        let settings = try WhatsAppCloudSettings(SettingsReader(json: """
            {"base_url":"http://127.0.0.1:9090/v21.0/","phone_number_id":"1","access_token_env":"T",
             "app_secret_env":"S","verify_token_env":"V","retry_ambiguous":false,"max_attempts":3,
             "note":"unknown keys are ignored"}
            """))
        #expect(settings == WhatsAppCloudSettings(
            baseURL: "http://127.0.0.1:9090/v21.0", phoneNumberID: "1", accessTokenEnv: "T",
            appSecretEnv: "S", verifyTokenEnv: "V", policy: DeliveryPolicy(maxAttempts: 3, retryAmbiguous: false)))
    }

    @Test("a missing phone_number_id is named")
    func missingPhoneNumberID() {
        #expect(configureError("whatsapp_cloud", "whatsapp", #"{"access_token_env":"WA_TOKEN"}"#)
            == #"setting "phone_number_id" is required"#)
        #expect(configureError("whatsapp_cloud", "whatsapp", #"{"phone_number_id":"","access_token_env":"WA_TOKEN"}"#)
            == #"setting "phone_number_id" is required"#)
    }

    @Test("twilio needs from or messaging_service_sid")
    func twilioSender() {
        #expect(configureError("twilio", "sms", #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"TW"}"#)
            == #"setting "from" or "messaging_service_sid" is required"#)
    }

    @Test("twilio's sender: from, messaging_service_sid, or both",
          arguments: [
            (#","from":"+15005550006""#, TwilioSender.number("+15005550006")),
            (#","messaging_service_sid":"MG1""#, .messagingService(sid: "MG1")),
            (#","from":"Acme","messaging_service_sid":"MG1""#, .numberOfService("Acme", sid: "MG1")),
          ])
    func twilioSenders(json: String, sender: TwilioSender) throws {
        let settings = try TwilioSettings(SettingsReader(
            json: #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"TW""# + json + "}"))
        #expect(settings.sender == sender)
    }

    @Test("twilio reads every setting")
    func twilioAll() throws {
        let settings = try TwilioSettings(SettingsReader(
            json: #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"TW","messaging_service_sid":"MG1","status_callback_url":"https://h.example/cb","max_attempts":2}"#))
        #expect(settings == TwilioSettings(
            baseURL: "https://api.twilio.com", accountSID: "AC0123456789abcdef0123456789abcdef", authTokenEnv: "TW",
            sender: .messagingService(sid: "MG1"), statusCallback: "https://h.example/cb", policy: DeliveryPolicy(maxAttempts: 2)))
    }

    @Test("twilio's status callback defaults to HERALD_PUBLIC_URL + /webhooks/twilio")
    func twilioStatusCallback() {
        var settings = TwilioSettings(accountSID: "AC0123456789abcdef0123456789abcdef", authTokenEnv: "TW", sender: .number("+15005550006"))
        #expect(settings.statusCallback(publicURL: "https://herald.example.com/") == "https://herald.example.com/webhooks/twilio")
        #expect(settings.statusCallback(publicURL: nil) == nil)
        settings.statusCallback = "https://other.example/cb"
        #expect(settings.statusCallback(publicURL: "https://herald.example.com") == "https://other.example/cb")
    }

    @Test("smtp url must name smtp:// or smtps://")
    func smtpURL() throws {
        #expect(configureError("smtp", "email", #"{"url":"https://mail.example.com","from":"a@b.example"}"#)
            == #"setting "url" must start with smtp:// or smtps://"#)
        #expect(configureError("smtp", "email", #"{"url":"smtp://","from":"a@b.example"}"#)
            == #"setting "url" must start with smtp:// or smtps://"#)
        #expect(try SMTPSettings(SettingsReader(json: #"{"url":"smtp://m","from":"a@b.example"}"#))
            == SMTPSettings(url: "smtp://m", from: "a@b.example"))
        #expect(configureError("smtp", "email", #"{"from":"a@b.example"}"#) == #"setting "url" is required"#)
    }

    @Test("smtp max_attachment_bytes defaults to 10 MiB and takes 1 byte to 25 MiB")
    func smtpMaxAttachmentBytes() throws {
        #expect(try SMTPSettings(SettingsReader(json: #"{"url":"smtp://m","from":"a@b.example"}"#)).maxAttachmentBytes == 10 << 20)
        #expect(try SMTPSettings(SettingsReader(json: #"{"url":"smtp://m","from":"a@b.example","max_attachment_bytes":3000}"#)).maxAttachmentBytes == 3000)
        #expect(configureError("smtp", "email", #"{"url":"smtp://127.0.0.1","from":"a@b.example","max_attachment_bytes":0}"#)
            == #"setting "max_attachment_bytes" must be an integer from 1 to 26214400"#)
    }

    @Test("smtp from must be an address")
    func smtpFrom() {
        #expect(configureError("smtp", "email", #"{"url":"smtp://mail.example.com:587","from":"Acme Shop"}"#)
            == #"setting "from" must be "Name <addr@domain>" or "addr@domain""#)
    }

    @Test("smtp reads every setting and hands its unsubscribe_url to the broadcast")
    func smtpAll() throws {
        let json = #"{"url":"smtp://mail.example.com:587","from":"Acme <news@acme.example>","username_env":"U","password_env":"P","require_tls":true,"ca_file":"/etc/herald/relay-ca.pem","unsubscribe_url":"https://acme.example/u?c={{ contact_id }}","retry_ambiguous":false}"#
        #expect(try SMTPSettings(SettingsReader(json: json)) == SMTPSettings(
            url: "smtp://mail.example.com:587", from: "Acme <news@acme.example>", usernameEnv: "U",
            passwordEnv: "P", requireTLS: true, caFile: "/etc/herald/relay-ca.pem", unsubscribeURL: "https://acme.example/u?c={{ contact_id }}",
            policy: DeliveryPolicy(maxAttempts: 5, retryAmbiguous: false)))
        #expect(try configure("smtp", "email", json).unsubscribeURLTemplate == "https://acme.example/u?c={{ contact_id }}")
    }

    @Test("sandbox works for any kind, with defaults")
    func sandbox() throws {
        for kind in ["whatsapp", "sms", "email"] {
            #expect((try configure("sandbox", kind, "{}") as? SandboxChannel)?.settings == SandboxSettings())
        }
        #expect((try configure("sandbox", "sms", "") as? SandboxChannel)?.settings == SandboxSettings())
        #expect((try configure("sandbox", "sms", #"{"latency_ms":25,"failure_rate":0.1}"#) as? SandboxChannel)?.settings
            == SandboxSettings(latencyMs: 25, failureRate: 0.1))
    }

    @Test("a sandbox signs its receipts only with both phone_number_id and app_secret_env")
    func sandboxReceiptIdentity() throws {
        #expect((try configure("sandbox", "email", #"{"phone_number_id":"p1","app_secret_env":"S"}"#) as? SandboxChannel)?.settings.receipts
            == SandboxReceiptIdentity(phoneNumberID: "p1", appSecretEnv: "S"))
        #expect(configureError("sandbox", "sms", #"{"phone_number_id":"p1"}"#)?.contains("app_secret_env") == true)
        #expect(configureError("sandbox", "sms", #"{"app_secret_env":"S"}"#)?.contains("phone_number_id") == true)
    }

    @Test("wrong types and ranges are named", arguments: [
        ("twilio", "sms", #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"T","from":"+1","retry_ambiguous":1}"#,
         #"setting "retry_ambiguous" must be true or false"#),
        ("twilio", "sms", #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"T","from":"+1","max_attempts":0}"#,
         #"setting "max_attempts" must be an integer from 1 to 100"#),
        ("twilio", "sms", #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"T","from":"+1","max_attempts":2.5}"#,
         #"setting "max_attempts" must be an integer from 1 to 100"#),
        ("twilio", "sms", #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"T","from":"+1","max_attempts":"5"}"#,
         #"setting "max_attempts" must be an integer from 1 to 100"#),
        ("whatsapp_cloud", "whatsapp", #"{"phone_number_id":106540352242922,"access_token_env":"T"}"#,
         #"setting "phone_number_id" must be a string"#),
        ("whatsapp_cloud", "whatsapp", #"{"phone_number_id":"1","access_token_env":"T","base_url":"graph.facebook.com"}"#,
         #"setting "base_url" must be an http:// or https:// URL"#),
        ("sandbox", "sms", #"{"failure_rate":1.5}"#, #"setting "failure_rate" must be a number from 0 to 1"#),
        ("sandbox", "sms", #"{"latency_ms":-1}"#, #"setting "latency_ms" must be an integer from 0 to 60000"#),
        ("sandbox", "sms", #"{"failure_rate":"0.5"}"#, #"setting "failure_rate" must be a number"#),
        ("sandbox", "sms", #"{"latency_ms":"#, "settings are not valid JSON"),
        ("sandbox", "sms", #"[1,2]"#, "settings must be a JSON object"),
    ])
    func typeErrors(provider: String, kind: String, json: String, message: String) {
        #expect(configureError(provider, kind, json) == message)
    }

    @Test("a provider sending another kind is refused")
    func kindMismatch() {
        #expect(configureError("twilio", "email", #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"T","from":"+1"}"#)
            == "provider twilio sends sms, not email")
        #expect(configureError("whatsapp_cloud", "sms", "{}") == "provider whatsapp_cloud sends whatsapp, not sms")
        #expect(configureError("sandbox", "fax", "{}") == #"unknown kind "fax" (expected whatsapp, sms or email)"#)
        #expect(configureError("mailgun", "email", "{}")
            == #"unknown provider "mailgun" (known: whatsapp_cloud, twilio, smtp, sandbox)"#)
    }

    @Test("secrets come from the injected environment and name the variable when missing")
    func secrets() throws {
        let json = #"{"phone_number_id":"1","access_token_env":"WA_TOKEN","app_secret_env":"WA_SECRET"}"#
        #expect(configureError("whatsapp_cloud", "whatsapp", json, environment: ProviderEnvironment(variables: [:]))
            == #"setting "access_token_env" names environment variable WA_TOKEN, which is not set"#)
        #expect(configureError("whatsapp_cloud", "whatsapp", json,
                               environment: ProviderEnvironment(variables: ["WA_TOKEN": "tok", "WA_SECRET": ""]))
            == #"setting "app_secret_env" names environment variable WA_SECRET, which is empty"#)
        let channel = try ProviderRegistry.standard.configure(
            provider: "whatsapp_cloud", kind: "whatsapp", settingsJSON: json,
            environment: ProviderEnvironment(variables: ["WA_TOKEN": "tok", "WA_SECRET": "sec"]))
        let configured = try #require(channel as? WhatsAppCloudChannel)
        #expect(configured.credentials == WhatsAppCloudCredentials(accessToken: "tok", appSecret: "sec", verifyToken: nil))
        #expect(!"\(channel)".contains("tok"))
    }

    @Test("twilio and smtp secrets")
    func otherSecrets() throws {
        let twilio = #"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token_env":"TW_TOKEN","from":"+1"}"#
        let tw = try ProviderRegistry.standard.configure(provider: "twilio", kind: "sms", settingsJSON: twilio,
                                                         environment: ProviderEnvironment(variables: ["TW_TOKEN": "t"]))
        #expect((tw as? TwilioChannel)?.credentials == TwilioCredentials(authToken: "t"))
        let smtp = #"{"url":"smtp://m:587","from":"a@b.example","username_env":"SMTP_USER","password_env":"SMTP_PASS"}"#
        let mail = try ProviderRegistry.standard.configure(provider: "smtp", kind: "email", settingsJSON: smtp,
                                                           environment: ProviderEnvironment(variables: ["SMTP_USER": "u", "SMTP_PASS": "p", "HERALD_ALLOWED_HOSTS": "m"]))
        #expect((mail as? SMTPChannel)?.credentials == SMTPCredentials(username: "u", password: "p"))
        #expect(configureError("smtp", "email", smtp, environment: ProviderEnvironment(variables: ["SMTP_USER": "u", "HERALD_ALLOWED_HOSTS": "m"]))
            == #"setting "password_env" names environment variable SMTP_PASS, which is not set"#)
        let anonymous = try ProviderRegistry.standard.configure(provider: "smtp", kind: "email",
                                                                settingsJSON: #"{"url":"smtp://m:25","from":"a@b.example"}"#,
                                                                environment: ProviderEnvironment(variables: ["HERALD_ALLOWED_HOSTS": "m"]))
        #expect((anonymous as? SMTPChannel)?.credentials == SMTPCredentials())
    }
}
