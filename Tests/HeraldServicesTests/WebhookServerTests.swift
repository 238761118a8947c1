import Foundation
import HeraldPostgres
import HeraldProviders
import HeraldServices
import HeraldStore
import HeraldTesting
import HeraldTransport
import Logging
import ServiceLifecycle
import Testing

/// `herald webhooks` over real HTTP on a free port, with a real database.
@Suite("Webhooks: the HTTP server")
struct WebhookServerTests {
    static let appSecret = "meta-app-secret"
    static let verifyToken = "meta-verify-token"
    static let authToken = "twilio-auth-token"
    static let accountSID = "AC00000000000000000000000000000001"
    static let publicURL = "https://hooks.example.com"
    static let phoneNumberID = "106540352242922"
    static let environment = ["HERALD_ALLOWED_HOSTS": "127.0.0.1", "WA_TOKEN": "x", "WA_SECRET": appSecret, "WA_VERIFY": verifyToken, "TW_TOKEN": authToken]

    struct Harness {
        let base: String
        let db: TestDatabase
        let c: PostgresConnection
        let transport: CurlTransport
        let server: WebhooksServer

        func request(_ method: String, _ path: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) async throws -> HTTPResponse {
            try await transport.execute(HTTPRequest(method: method, url: base + path, headers: headers, body: body, timeout: .seconds(10)))
        }

        func postWhatsApp(_ body: String, signature: String?) async throws -> HTTPResponse {
            var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
            if let signature { headers.append(("X-Hub-Signature-256", signature)) }
            return try await request("POST", "/webhooks/whatsapp", headers: headers, body: Array(body.utf8))
        }

        /// Posts a status callback as Twilio does, to the `StatusCallback` URL of the send of `message`.
        func postTwilio(_ fields: [FormField], message: Int64?, signature: String?) async throws -> HTTPResponse {
            var headers: [(name: String, value: String)] = [("Content-Type", "application/x-www-form-urlencoded")]
            if let signature { headers.append(("X-Twilio-Signature", signature)) }
            let path = message.map { Twilio.statusCallback("/webhooks/twilio", messageID: $0) } ?? "/webhooks/twilio"
            return try await request("POST", path, headers: headers, body: Array(FormURLEncoded.encode(fields).utf8))
        }

        func receiptCount() async throws -> Int {
            try await c.query("SELECT count(*) FROM herald.delivery_receipts")[0].decode(Int.self, at: 0)
        }

        func status(_ id: Int64) async throws -> String {
            try await c.query("SELECT status FROM herald.messages WHERE id = \(id)")[0].decode(String.self, at: 0)
        }

        /// Waits until `condition` holds (receipts are applied a few milliseconds after the 200).
        func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
            try await HeraldTesting.eventually(within: .seconds(5), every: .milliseconds(50), condition)
        }
    }

    /// `herald webhooks` for the test database `db` on a free port of 127.0.0.1, as the webhook
    /// suites run it (``publicURL``, channels re-read every 200 ms); `configure` sets the rest.
    static func withWebhooks<T: Sendable>(_ db: TestDatabase, environment: [String: String], label: String,
                                          transportWindow: Int = 8,
                                          configure: (inout WebhooksConfiguration) -> Void = { _ in },
                                          _ body: (_ base: String, _ transport: CurlTransport, _ server: WebhooksServer) async throws -> T)
        async throws -> T {
        var config = WebhooksConfiguration(databaseURL: db.url, environment: environment)
        config.host = "127.0.0.1"
        config.port = 0
        config.publicURL = publicURL
        config.channelRefresh = .milliseconds(200)
        configure(&config)
        let logger = warningsOnlyLogger(label)
        let server = WebhooksServer(configuration: config, logger: logger)
        return try await withRunningServer(server, boundPort: { server.boundPort }, logger: logger,
                                           transportWindow: transportWindow) { base, transport in
            try await body(base, transport, server)
        }
    }

    /// Runs a webhooks server on a free port with a WhatsApp and a Twilio channel.
    static func withServer<T: Sendable>(environment: [String: String] = environment,
                                        readTimeout: Duration? = nil,
                                        refreshOnDemandAfter: Duration? = nil,
                                        configure: (inout WebhooksConfiguration) -> Void = { _ in },
                                        _ body: (Harness) async throws -> T) async throws -> T {
        try await withTestConnection { db, c in
            let wa = #"{"phone_number_id":"\#(phoneNumberID)","access_token_env":"WA_TOKEN","app_secret_env":"WA_SECRET","verify_token_env":"WA_VERIFY"}"#
            let tw = #"{"account_sid":"\#(accountSID)","auth_token_env":"TW_TOKEN","from":"+15005550006"}"#
            try await c.execute("""
                INSERT INTO herald.channels (name, kind, provider, settings) VALUES
                    ('wa', 'whatsapp', 'whatsapp_cloud', \(wa)::jsonb), ('sms', 'sms', 'twilio', \(tw)::jsonb)
                """)
            return try await withWebhooks(db, environment: environment, label: "test.webhooks", transportWindow: 32, configure: { config in
                config.retryInterval = .milliseconds(100)
                config.queueSampleInterval = .zero
                if let readTimeout { config.readTimeout = readTimeout }
                if let refreshOnDemandAfter { config.refreshOnDemandAfter = refreshOnDemandAfter }
                configure(&config)
            }) { base, transport, server in
                try await body(Harness(base: base, db: db, c: c, transport: transport, server: server))
            }
        }
    }

    /// One sent WhatsApp message (`wamid.<id>`) and one sent SMS (`SM<id>`); returns (whatsApp, sms) message ids.
    static func sentMessages(_ c: PostgresConnection) async throws -> (Int64, Int64) {
        let contact = try await WorkerFixtures.contact(c, first: "Sheena", phone: "+16505551234")
        let rows = try await c.query("""
            WITH b AS (
                INSERT INTO herald.broadcasts (name, channel_id, status) SELECT 'b-' || name, id, 'sending' FROM herald.channels
                RETURNING id, channel_id
            )
            INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address, status, sent_at)
            SELECT b.id, \(contact), b.channel_id, '+16505551234', 'sent', now() FROM b
            RETURNING id, channel_id
            """)
        var wa: Int64 = 0, sms: Int64 = 0
        for r in rows {
            let id = try r.decode(Int64.self, at: 0)
            if try r.decode(Int64.self, at: 1) == 1 { wa = id } else { sms = id }
        }
        try await c.execute("""
            UPDATE herald.messages SET provider_message_id = CASE WHEN id = \(wa) THEN 'wamid.' || id ELSE 'SM' || id END
            """)
        return (wa, sms)
    }

    static func metaStatus(_ wamid: String, _ status: String, callback: Int64? = nil, errors: String = "",
                           phoneNumberID: String = phoneNumberID) -> String {
        let cb = callback.map { #","biz_opaque_callback_data":"\#($0)""# } ?? ""
        return #"""
        {"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"\#(phoneNumberID)"},"statuses":[{"id":"\#(wamid)","status":"\#(status)","timestamp":"1750263790","recipient_id":"16505551234"\#(cb),"conversation":{"id":"6ceb9d929c9d6a6b9ba1e6eef9c4d3f6","origin":{"type":"marketing"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"marketing"}\#(errors)}]},"field":"messages"}]}]}
        """#
    }

    static func twilioCallback(_ sid: String, _ status: String, errorCode: String? = nil, account: String = accountSID) -> [FormField] {
        var fields = [FormField("SmsSid", sid), FormField("SmsStatus", status), FormField("MessageStatus", status),
                      FormField("To", "+16505551234"), FormField("MessageSid", sid), FormField("AccountSid", account),
                      FormField("From", "+15005550006"), FormField("ApiVersion", "2010-04-01")]
        if let errorCode { fields.insert(FormField("ErrorCode", errorCode), at: 0) }
        return fields
    }

    static let twilioURL = publicURL + "/webhooks/twilio"

    /// The `StatusCallback` URL Herald sends with message `id`, which Twilio signs.
    static func twilioURL(_ id: Int64) -> String { Twilio.statusCallback(twilioURL, messageID: id) }

    // MARK: Handshake

    @Test("Meta's handshake: the challenge is echoed for the right verify token only")
    func handshake() async throws {
        try await Self.withServer { h in
            let ok = try await h.request("GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=\(Self.verifyToken)&hub.challenge=1158201444")
            #expect(ok.status == 200)
            #expect(String(decoding: ok.body, as: UTF8.self) == "1158201444")
            let wrong = try await h.request("GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444")
            #expect(wrong.status == 403)
            #expect(!String(decoding: wrong.body, as: UTF8.self).contains("1158201444"))
            let noMode = try await h.request("GET", "/webhooks/whatsapp?hub.verify_token=\(Self.verifyToken)&hub.challenge=1")
            #expect(noMode.status == 403)
        }
    }

    // MARK: WhatsApp

    @Test("WhatsApp: a signed status is stored raw and applied; unsigned and wrongly signed ones are 401 and store nothing")
    func whatsAppSignatures() async throws {
        try await Self.withServer { h in
            let (wa, _) = try await Self.sentMessages(h.c)
            let body = Self.metaStatus("wamid.\(wa)", "delivered", callback: wa)
            let unsigned = try await h.postWhatsApp(body, signature: nil)
            #expect(unsigned.status == 401)
            let wrongSecret = try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: "guess"))
            #expect(wrongSecret.status == 401)
            let otherBody = try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array((body + " ").utf8), appSecret: Self.appSecret))
            #expect(otherBody.status == 401)
            let garbage = try await h.postWhatsApp(body, signature: "sha256=zz")
            #expect(garbage.status == 401)
            #expect(try await h.receiptCount() == 0)
            #expect(try await h.status(wa) == "sent")

            let signed = try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.appSecret))
            #expect(signed.status == 200)
            #expect(try await h.receiptCount() == 1, "stored before the 200")
            #expect(try await h.eventually { try await h.status(wa) == "delivered" })
            let r = try await h.c.query("""
                SELECT provider, provider_message_id, status, occurred_at, payload->'pricing'->>'category', message_id, channel_id
                FROM herald.delivery_receipts
                """)[0]
            #expect(try r.decode(String.self, at: 0) == "whatsapp_cloud")
            #expect(try r.decode(String.self, at: 1) == "wamid.\(wa)")
            #expect(try r.decode(String.self, at: 2) == "delivered")
            #expect(try r.decode(Date.self, at: 3) == Date(timeIntervalSince1970: 1_750_263_790))
            #expect(try r.decode(String.self, at: 4) == "marketing")
            #expect(try await h.eventually {
                try await h.c.query("SELECT message_id FROM herald.delivery_receipts")[0].decode(Int64?.self, at: 0) == wa
            })
        }
    }

    @Test("WhatsApp: a failed status with its error code, matched by Herald's id when the wamid is unknown")
    func whatsAppFailedByCallback() async throws {
        try await Self.withServer { h in
            let (wa, _) = try await Self.sentMessages(h.c)
            try await h.c.execute("UPDATE herald.messages SET provider_message_id = NULL WHERE id = \(wa)")
            let errors = #","errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"Message could not be delivered"}}]"#
            let body = Self.metaStatus("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA", "failed", callback: wa, errors: errors)
            let response = try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.appSecret))
            #expect(response.status == 200)
            #expect(try await h.eventually { try await h.status(wa) == "failed" })
            let m = try await h.c.query("SELECT error_code, error, provider_message_id, failed_at FROM herald.message_status WHERE message_id = \(wa)")[0]
            #expect(try m.decode(String?.self, at: 0) == "131026")
            #expect(try m.decode(String?.self, at: 1) == "Message undeliverable: Message could not be delivered")
            #expect(try m.decode(String?.self, at: 2) == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA")
            #expect(try m.decode(Date?.self, at: 3) != nil)
        }
    }

    @Test("WhatsApp: an incoming message moves the sender's last_inbound_at")
    func whatsAppInbound() async throws {
        try await Self.withServer { h in
            let contact = try await WorkerFixtures.contact(h.c, first: "Sheena", phone: "+16505551234", lastInbound: false)
            let body = #"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"\#(Self.phoneNumberID)"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.in","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},"field":"messages"}]}]}"#
            let unsigned = try await h.postWhatsApp(body, signature: nil)
            #expect(unsigned.status == 401)
            let response = try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.appSecret))
            #expect(response.status == 200)
            let at = try await h.c.query("SELECT last_inbound_at FROM herald.contacts WHERE id = \(contact)")[0].decode(Date?.self, at: 0)
            #expect(at == Date(timeIntervalSince1970: 1_749_416_383))
        }
    }

    // MARK: Twilio

    @Test("Twilio: a signed callback is stored and applied; unsigned, wrongly signed and unknown accounts are 401 and store nothing")
    func twilioSignatures() async throws {
        try await Self.withServer { h in
            let (_, sms) = try await Self.sentMessages(h.c)
            let fields = Self.twilioCallback("SM\(sms)", "undelivered", errorCode: "30003")
            let url = Self.twilioURL(sms)
            #expect(try await h.postTwilio(fields, message: sms, signature: nil).status == 401)
            #expect(try await h.postTwilio(fields, message: sms, signature: WebhookSignature.twilio(url: url, parameters: fields, authToken: "guess")).status == 401)
            // Signed over other parameters than those posted (one was added in transit).
            let tampered = fields + [FormField("Price", "0")]
            #expect(try await h.postTwilio(tampered, message: sms, signature: WebhookSignature.twilio(url: url, parameters: fields, authToken: Self.authToken)).status == 401)
            // Signed over another URL: another host, another message id, or without the message id.
            #expect(try await h.postTwilio(fields, message: sms, signature: WebhookSignature.twilio(url: "https://evil.example.com/webhooks/twilio?herald_message_id=\(sms)", parameters: fields, authToken: Self.authToken)).status == 401)
            #expect(try await h.postTwilio(fields, message: sms, signature: WebhookSignature.twilio(url: Self.twilioURL(sms + 1), parameters: fields, authToken: Self.authToken)).status == 401)
            #expect(try await h.postTwilio(fields, message: sms, signature: WebhookSignature.twilio(url: Self.twilioURL, parameters: fields, authToken: Self.authToken)).status == 401)
            let stranger = Self.twilioCallback("SM\(sms)", "delivered", account: "AC99999999999999999999999999999999")
            #expect(try await h.postTwilio(stranger, message: sms, signature: WebhookSignature.twilio(url: url, parameters: stranger, authToken: Self.authToken)).status == 401)
            #expect(try await h.receiptCount() == 0)
            #expect(try await h.status(sms) == "sent")

            let ok = try await h.postTwilio(fields, message: sms, signature: WebhookSignature.twilio(url: url, parameters: fields, authToken: Self.authToken))
            #expect(ok.status == 200)
            #expect(try await h.eventually { try await h.status(sms) == "failed" })
            let m = try await h.c.query("SELECT error_code FROM herald.messages WHERE id = \(sms)")[0]
            #expect(try m.decode(String?.self, at: 0) == "30003")
            let r = try await h.c.query("SELECT provider, status, effect, payload->>'ApiVersion', callback_message_id FROM herald.delivery_receipts")[0]
            #expect(try r.decode(String.self, at: 0) == "twilio")
            #expect(try r.decode(String.self, at: 1) == "undelivered")
            #expect(try r.decode(String.self, at: 2) == "failed")
            #expect(try r.decode(String.self, at: 3) == "2010-04-01")
            #expect(try r.decode(Int64?.self, at: 4) == sms)
        }
    }

    @Test("Twilio: a callback without Herald's message id (a send of another tool) is stored but matches no message")
    func twilioWithoutMessageID() async throws {
        try await Self.withServer { h in
            let (wa, sms) = try await Self.sentMessages(h.c)
            let fields = Self.twilioCallback("SM\(sms)", "delivered")
            let response = try await h.postTwilio(fields, message: nil, signature: WebhookSignature.twilio(url: Self.twilioURL, parameters: fields, authToken: Self.authToken))
            #expect(response.status == 200)
            #expect(try await h.receiptCount() == 1)
            // A receipt stored after it and applied is the signal that an apply pass went over it.
            let later = Self.metaStatus("wamid.\(wa)", "delivered", callback: wa)
            #expect(try await h.postWhatsApp(later, signature: WebhookSignature.meta(body: Array(later.utf8), appSecret: Self.appSecret)).status == 200)
            #expect(try await h.eventually { try await h.status(wa) == "delivered" })
            #expect(try await h.status(sms) == "sent")
            let r = try await h.c.query("SELECT message_id, callback_message_id FROM herald.delivery_receipts WHERE provider = 'twilio'")[0]
            #expect(try r.decode(Int64?.self, at: 0) == nil)
            #expect(try r.decode(Int64?.self, at: 1) == nil)
        }
    }

    // MARK: Bad bodies

    @Test("oversized bodies are 413, malformed ones 400 (unsigned ones 401), store nothing, and the server keeps serving")
    func badBodies() async throws {
        try await Self.withServer { h in
            let (wa, sms) = try await Self.sentMessages(h.c)
            let huge = #"{"object":"whatsapp_business_account","entry":[],"pad":""# + String(repeating: "x", count: 2 << 20) + #""}"#
            #expect(try await h.postWhatsApp(huge, signature: WebhookSignature.meta(body: Array(huge.utf8), appSecret: Self.appSecret)).status == 413)
            for body in ["{", "not json", #"{"object":"whatsapp_business_account","entry":{}}"#,
                         #"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"\#(Self.phoneNumberID)"},"statuses":[{"status":"read"}]}}]}]}"#,
                         String(repeating: "[", count: 50_000)] {
                let response = try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.appSecret))
                #expect(response.status == 400)
            }
            let wellFormed = Data(repeating: 0, count: 20).base64EncodedString()
            let badForm = try await h.request("POST", "/webhooks/twilio", headers: [("X-Twilio-Signature", wellFormed)], body: Array("AccountSid=%ZZ".utf8))
            #expect(badForm.status == 400)
            // Without AccountSid nothing can verify it.
            let missing = try await h.request("POST", "/webhooks/twilio", headers: [("X-Twilio-Signature", wellFormed)], body: Array("MessageStatus=sent".utf8))
            #expect(missing.status == 401)
            #expect(try await h.receiptCount() == 0)
            // Still serving.
            let body = Self.metaStatus("wamid.\(wa)", "read", callback: wa)
            #expect(try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.appSecret)).status == 200)
            let fields = Self.twilioCallback("SM\(sms)", "delivered")
            #expect(try await h.postTwilio(fields, message: sms, signature: WebhookSignature.twilio(url: Self.twilioURL(sms), parameters: fields, authToken: Self.authToken)).status == 200)
            #expect(try await h.eventually { try await h.status(wa) == "read" })
            #expect(try await h.eventually { try await h.status(sms) == "delivered" })
        }
    }

    @Test("a burst of concurrent signed posts is stored and applied completely")
    func burst() async throws {
        try await Self.withServer { h in
            let channel: Int64 = 1
            let contacts = try await WorkerFixtures.contacts(h.c, count: 300)
            let b = try await WorkerFixtures.sendingBroadcast(h.c, channel: channel, contacts: contacts, body: "x")
            try await h.c.execute("DELETE FROM herald.jobs")
            try await h.c.execute("UPDATE herald.messages SET status = 'sent', sent_at = now(), provider_message_id = 'wamid.' || id")
            let ids = try await h.c.query("SELECT id FROM herald.messages ORDER BY id").map { try $0.decode(Int64.self, at: 0) }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for id in ids {
                    for status in ["delivered", "read"] {
                        group.addTask {
                            let body = Self.metaStatus("wamid.\(id)", status, callback: id)
                            return try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.appSecret)).status
                        }
                    }
                }
                for try await status in group { #expect(status == 200) }
            }
            #expect(try await h.receiptCount() == 600)
            #expect(try await h.eventually { try await WorkerFixtures.statuses(h.c, broadcast: b) == ["read": 300] })
            let report = try #require(try await ReportStore().broadcastReport(id: b, on: h.c))
            #expect(report.read == 300 && report.recipients == 300 && report.sent == 0 && report.delivered == 0)
        }
    }

    // MARK: Metrics and health

    @Test("/metrics is Prometheus text format and counts receipts; /healthz answers")
    func metricsAndHealth() async throws {
        try await Self.withServer { h in
            let (wa, _) = try await Self.sentMessages(h.c)
            let body = Self.metaStatus("wamid.\(wa)", "delivered", callback: wa)
            #expect(try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.appSecret)).status == 200)
            #expect(try await h.postWhatsApp(body, signature: nil).status == 401)
            let page = try await h.request("GET", "/metrics")
            #expect(page.status == 200)
            #expect(page.headers["content-type"]?.hasPrefix("text/plain") == true)
            let samples = try PrometheusText.parse(String(decoding: page.body, as: UTF8.self))
            #expect(samples[#"herald_receipts_total{provider="whatsapp_cloud",status="delivered"}"#] == 1)
            #expect(samples[#"herald_webhook_requests_total{outcome="accepted",provider="whatsapp_cloud"}"#] == 1)
            #expect(samples[#"herald_webhook_requests_total{outcome="unauthorized",provider="whatsapp_cloud"}"#] == 1)
            #expect(try await h.request("GET", "/healthz").status == 200)
        }
    }
}

/// A strict reader of Prometheus' text exposition format (version 0.0.4): every line is a
/// `# HELP`, a `# TYPE` with a known type, or a sample `name{label="value",…} number`.
enum PrometheusText {
    struct Invalid: Error, CustomStringConvertible {
        var line: String
        var description: String { "not Prometheus text format: \(line)" }
    }

    /// Samples by `name{labels}` as written.
    static func parse(_ text: String) throws -> [String: Double] {
        var samples: [String: Double] = [:]
        let name = #"[a-zA-Z_:][a-zA-Z0-9_:]*"#
        let sample = try Regex(#"^(\#(name)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?) (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$"#)
        let help = try Regex(#"^# HELP \#(name) .*$"#)
        let type = try Regex(#"^# TYPE \#(name) (counter|gauge|histogram|summary|untyped)$"#)
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") {
                guard line.wholeMatch(of: help) != nil || line.wholeMatch(of: type) != nil else { throw Invalid(line: String(line)) }
                continue
            }
            guard line.wholeMatch(of: sample) != nil, let space = line.lastIndex(of: " "),
                  let value = Double(line[line.index(after: space)...].replacingOccurrences(of: "+Inf", with: "inf")) else {
                throw Invalid(line: String(line))
            }
            samples[String(line[..<space])] = value
        }
        return samples
    }
}
