import Testing
@testable import HeraldProviders

@Suite struct SettingsTests {
    private func parseError(_ provider: String, _ kind: String, _ json: String) -> String? {
        do {
            _ = try ProviderConfig.parse(provider: provider, kind: kind, settingsJSON: json)
            return nil
        } catch let error as ChannelConfigError {
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test("whatsapp_cloud with only required settings takes the defaults")
    func whatsAppDefaults() throws {
        let config = try ProviderConfig.parse(
            provider: "whatsapp_cloud", kind: "whatsapp",
            settingsJSON: #"{"phone_number_id":"106540352242922","access_token_env":"WA_TOKEN"}"#)
        #expect(config == .whatsappCloud(WhatsAppCloudSettings(
            baseURL: "https://graph.facebook.com/v21.0", phoneNumberID: "106540352242922",
            accessTokenEnv: "WA_TOKEN", appSecretEnv: nil, verifyTokenEnv: nil,
            retryAmbiguous: true, maxAttempts: 5)))
        #expect(config.provider == "whatsapp_cloud")
        #expect(config.maxAttempts == 5)
        #expect(config.retryAmbiguous)
    }

    @Test("whatsapp_cloud reads every setting and trims base_url's trailing slash")
    func whatsAppAll() throws {
        let config = try ProviderConfig.parse(
            provider: "whatsapp_cloud", kind: "whatsapp",
            settingsJSON: """
            {"base_url":"http://127.0.0.1:9090/v21.0/","phone_number_id":"1","access_token_env":"T",
             "app_secret_env":"S","verify_token_env":"V","retry_ambiguous":false,"max_attempts":3,
             "note":"unknown keys are ignored"}
            """)
        #expect(config == .whatsappCloud(WhatsAppCloudSettings(
            baseURL: "http://127.0.0.1:9090/v21.0", phoneNumberID: "1", accessTokenEnv: "T",
            appSecretEnv: "S", verifyTokenEnv: "V", retryAmbiguous: false, maxAttempts: 3)))
    }

    @Test("a missing phone_number_id is named")
    func missingPhoneNumberID() {
        #expect(parseError("whatsapp_cloud", "whatsapp", #"{"access_token_env":"WA_TOKEN"}"#)
            == #"channel settings: "phone_number_id" is required for provider whatsapp_cloud"#)
        #expect(parseError("whatsapp_cloud", "whatsapp", #"{"phone_number_id":"","access_token_env":"WA_TOKEN"}"#)
            == #"channel settings: "phone_number_id" is required for provider whatsapp_cloud"#)
    }

    @Test("twilio needs from or messaging_service_sid")
    func twilioSender() {
        #expect(parseError("twilio", "sms", #"{"account_sid":"AC1","auth_token_env":"TW"}"#)
            == #"channel settings: twilio needs "from" or "messaging_service_sid""#)
    }

    @Test("twilio reads every setting")
    func twilioAll() throws {
        let config = try ProviderConfig.parse(
            provider: "twilio", kind: "sms",
            settingsJSON: #"{"account_sid":"AC1","auth_token_env":"TW","messaging_service_sid":"MG1","status_callback_url":"https://h.example/cb","max_attempts":2}"#)
        #expect(config == .twilio(TwilioSettings(
            baseURL: "https://api.twilio.com", accountSID: "AC1", authTokenEnv: "TW", from: nil,
            messagingServiceSID: "MG1", statusCallback: "https://h.example/cb", retryAmbiguous: true, maxAttempts: 2)))
    }

    @Test("twilio's status callback defaults to HERALD_PUBLIC_URL + /webhooks/twilio")
    func twilioStatusCallback() {
        var settings = TwilioSettings(accountSID: "AC1", authTokenEnv: "TW", from: "+15005550006")
        #expect(settings.statusCallback(publicURL: "https://herald.example.com/") == "https://herald.example.com/webhooks/twilio")
        #expect(settings.statusCallback(publicURL: nil) == nil)
        settings.statusCallback = "https://other.example/cb"
        #expect(settings.statusCallback(publicURL: "https://herald.example.com") == "https://other.example/cb")
    }

    @Test("smtp url must name smtp:// or smtps://")
    func smtpURL() throws {
        #expect(parseError("smtp", "email", #"{"url":"https://mail.example.com","from":"a@b.example"}"#)
            == #"channel settings: smtp "url" must start with smtp:// or smtps://"#)
        #expect(parseError("smtp", "email", #"{"url":"smtp://","from":"a@b.example"}"#)
            == #"channel settings: smtp "url" must start with smtp:// or smtps://"#)
        #expect(try ProviderConfig.parse(provider: "smtp", kind: "email", settingsJSON: #"{"url":"smtp://m","from":"a@b.example"}"#)
            == .smtp(SMTPSettings(url: "smtp://m", from: "a@b.example")))
        #expect(parseError("smtp", "email", #"{"from":"a@b.example"}"#)
            == #"channel settings: "url" is required for provider smtp"#)
    }

    @Test("smtp from must be an address")
    func smtpFrom() {
        #expect(parseError("smtp", "email", #"{"url":"smtp://mail.example.com:587","from":"Acme Shop"}"#)
            == #"channel settings: smtp "from" must be "Name <addr@domain>" or "addr@domain""#)
    }

    @Test("smtp reads every setting")
    func smtpAll() throws {
        let config = try ProviderConfig.parse(
            provider: "smtp", kind: "email",
            settingsJSON: #"{"url":"smtp://mail.example.com:587","from":"Acme <news@acme.example>","username_env":"U","password_env":"P","require_tls":true,"ca_file":"/etc/herald/relay-ca.pem","unsubscribe_url":"https://acme.example/u?c={{ contact_id }}","retry_ambiguous":false}"#)
        #expect(config == .smtp(SMTPSettings(
            url: "smtp://mail.example.com:587", from: "Acme <news@acme.example>", usernameEnv: "U",
            passwordEnv: "P", requireTLS: true, caFile: "/etc/herald/relay-ca.pem", unsubscribeURL: "https://acme.example/u?c={{ contact_id }}",
            retryAmbiguous: false, maxAttempts: 5)))
    }

    @Test("sandbox works for any kind, with defaults")
    func sandbox() throws {
        for kind in ["whatsapp", "sms", "email"] {
            #expect(try ProviderConfig.parse(provider: "sandbox", kind: kind, settingsJSON: "{}") == .sandbox(SandboxSettings()))
        }
        #expect(try ProviderConfig.parse(provider: "sandbox", kind: "sms", settingsJSON: "")
            == .sandbox(SandboxSettings()))
        #expect(try ProviderConfig.parse(provider: "sandbox", kind: "sms", settingsJSON: #"{"latency_ms":25,"failure_rate":0.1}"#)
            == .sandbox(SandboxSettings(latencyMs: 25, failureRate: 0.1, maxAttempts: 5)))
    }

    @Test("wrong types and ranges are named", arguments: [
        ("twilio", "sms", #"{"account_sid":"AC1","auth_token_env":"T","from":"+1","retry_ambiguous":1}"#,
         #"channel settings: "retry_ambiguous" must be true or false for provider twilio"#),
        ("twilio", "sms", #"{"account_sid":"AC1","auth_token_env":"T","from":"+1","max_attempts":0}"#,
         #"channel settings: "max_attempts" must be an integer ≥ 1 for provider twilio"#),
        ("twilio", "sms", #"{"account_sid":"AC1","auth_token_env":"T","from":"+1","max_attempts":2.5}"#,
         #"channel settings: "max_attempts" must be an integer for provider twilio"#),
        ("whatsapp_cloud", "whatsapp", #"{"phone_number_id":106540352242922,"access_token_env":"T"}"#,
         #"channel settings: "phone_number_id" must be a string for provider whatsapp_cloud"#),
        ("whatsapp_cloud", "whatsapp", #"{"phone_number_id":"1","access_token_env":"T","base_url":"graph.facebook.com"}"#,
         #"channel settings: "base_url" must be an http:// or https:// URL for provider whatsapp_cloud"#),
        ("sandbox", "sms", #"{"failure_rate":1.5}"#,
         #"channel settings: "failure_rate" must be a number from 0 to 1 for provider sandbox"#),
        ("sandbox", "sms", #"{"latency_ms":-1}"#,
         #"channel settings: "latency_ms" must be an integer ≥ 0 for provider sandbox"#),
        ("sandbox", "sms", #"{"failure_rate":"0.5"}"#,
         #"channel settings: "failure_rate" must be a number for provider sandbox"#),
        ("sandbox", "sms", #"{"latency_ms":"#, "channel settings: not valid JSON for provider sandbox"),
        ("sandbox", "sms", #"[1,2]"#, "channel settings: must be a JSON object for provider sandbox"),
    ])
    func typeErrors(provider: String, kind: String, json: String, message: String) {
        #expect(parseError(provider, kind, json) == message)
    }

    @Test("a provider sending another kind is refused")
    func kindMismatch() {
        #expect(parseError("twilio", "email", #"{"account_sid":"AC1","auth_token_env":"T","from":"+1"}"#)
            == "channel settings: provider/kind mismatch: provider twilio sends sms, but the channel's kind is email")
        #expect(parseError("whatsapp_cloud", "sms", "{}")
            == "channel settings: provider/kind mismatch: provider whatsapp_cloud sends whatsapp, but the channel's kind is sms")
        #expect(parseError("sandbox", "fax", "{}")
            == #"channel settings: unknown kind "fax" (expected whatsapp, sms or email)"#)
        #expect(parseError("mailgun", "email", "{}")
            == #"channel settings: unknown provider "mailgun" (expected whatsapp_cloud, twilio, smtp or sandbox)"#)
    }

    @Test("secrets come from the injected environment and name the variable when missing")
    func secrets() throws {
        let config = try ProviderConfig.parse(
            provider: "whatsapp_cloud", kind: "whatsapp",
            settingsJSON: #"{"phone_number_id":"1","access_token_env":"WA_TOKEN","app_secret_env":"WA_SECRET"}"#)
        #expect(throws: ChannelConfigError(
            provider: "whatsapp_cloud", setting: "access_token_env",
            message: #"channel settings: environment variable WA_TOKEN named by "access_token_env" is not set"#)) {
            try config.resolveSecrets(environment: [:])
        }
        #expect(throws: ChannelConfigError(
            provider: "whatsapp_cloud", setting: "app_secret_env",
            message: #"channel settings: environment variable WA_SECRET named by "app_secret_env" is empty"#)) {
            try config.resolveSecrets(environment: ["WA_TOKEN": "tok", "WA_SECRET": ""])
        }
        let credentials = try config.resolveSecrets(environment: ["WA_TOKEN": "tok", "WA_SECRET": "sec"])
        #expect(credentials == .whatsappCloud(WhatsAppCloudCredentials(accessToken: "tok", appSecret: "sec", verifyToken: nil)))
        #expect(!"\(credentials)".contains("tok"))
    }

    @Test("twilio and smtp secrets")
    func otherSecrets() throws {
        let twilio = TwilioSettings(accountSID: "AC1", authTokenEnv: "TW_TOKEN", from: "+1")
        #expect(try twilio.resolveSecrets(environment: ["TW_TOKEN": "t"]) == TwilioCredentials(authToken: "t"))
        let smtp = SMTPSettings(url: "smtp://m:587", from: "a@b.example", usernameEnv: "SMTP_USER", passwordEnv: "SMTP_PASS")
        #expect(try smtp.resolveSecrets(environment: ["SMTP_USER": "u", "SMTP_PASS": "p"]) == SMTPCredentials(username: "u", password: "p"))
        #expect(throws: ChannelConfigError.self) { try smtp.resolveSecrets(environment: ["SMTP_USER": "u"]) }
        #expect(try SMTPSettings(url: "smtp://m:25", from: "a@b.example").resolveSecrets(environment: [:]) == SMTPCredentials())
        #expect(try ProviderConfig.sandbox(SandboxSettings()).resolveSecrets(environment: [:]) == .sandbox)
    }
}
