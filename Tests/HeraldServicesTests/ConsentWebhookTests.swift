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

/// The consent routes of `herald webhooks` over real HTTP with a real database: keywords by SMS
/// and WhatsApp, and the one-click unsubscribe link.
@Suite("Consent: keywords and unsubscribe links at the webhooks server")
struct ConsentWebhookTests {
    typealias S = WebhookServerTests
    static let secret = "unsubscribe-secret"
    static let phone = "+16505551234"

    struct Harness {
        let base: String
        let c: PostgresConnection
        let transport: CurlTransport

        func request(_ method: String, _ path: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) async throws -> HTTPResponse {
            try await transport.execute(HTTPRequest(method: method, url: base + path, headers: headers, body: body, timeout: .seconds(10)))
        }

        /// An incoming SMS as Twilio posts it to `HERALD_PUBLIC_URL/webhooks/twilio/inbound`.
        func sms(_ text: String, from: String = ConsentWebhookTests.phone, authToken: String = S.authToken) async throws -> HTTPResponse {
            let fields = [FormField("ToCountry", "US"), FormField("SmsMessageSid", "SMin"), FormField("NumMedia", "0"),
                          FormField("Body", text), FormField("From", from), FormField("To", "+15005550006"),
                          FormField("AccountSid", S.accountSID), FormField("MessageSid", "SMin"), FormField("ApiVersion", "2010-04-01")]
            let signature = WebhookSignature.twilio(url: S.publicURL + "/webhooks/twilio/inbound", parameters: fields, authToken: authToken)
            return try await request("POST", "/webhooks/twilio/inbound",
                                     headers: [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature)],
                                     body: Array(FormURLEncoded.encode(fields).utf8))
        }

        /// An incoming WhatsApp text, signed with the app secret.
        func whatsApp(_ text: String, from: String = "16505551234") async throws -> HTTPResponse {
            let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            let body = #"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"\#(S.phoneNumberID)"},"contacts":[{"profile":{"name":"Sheena"},"wa_id":"\#(from)"}],"messages":[{"from":"\#(from)","id":"wamid.in","timestamp":"1749416383","type":"text","text":{"body":"\#(escaped)"}}]},"field":"messages"}]}]}"#
            return try await request("POST", "/webhooks/whatsapp",
                                     headers: [("Content-Type", "application/json"),
                                               ("X-Hub-Signature-256", WebhookSignature.meta(body: Array(body.utf8), appSecret: S.appSecret))],
                                     body: Array(body.utf8))
        }

        /// Opt-outs as `source:kind` strings, sorted (`admin` for the admin tool's).
        func optOuts(_ contact: Int64) async throws -> [String] {
            try await c.query("""
                SELECT coalesce(source, 'admin') || ':' || channel_kind FROM herald.opt_outs WHERE contact_id = \(contact) ORDER BY 1
                """).map { try $0.decode(String.self, at: 0) }
        }
    }

    /// A webhooks server with WebhookServerTests' WhatsApp and Twilio channels and unsubscribe links configured.
    static func withServer<T: Sendable>(_ body: (Harness) async throws -> T) async throws -> T {
        try await withTestConnection { db, c in
            let wa = #"{"phone_number_id":"\#(S.phoneNumberID)","access_token_env":"WA_TOKEN","app_secret_env":"WA_SECRET","verify_token_env":"WA_VERIFY"}"#
            let tw = #"{"account_sid":"\#(S.accountSID)","auth_token_env":"TW_TOKEN","from":"+15005550006"}"#
            try await c.execute("""
                INSERT INTO herald.channels (name, kind, provider, settings) VALUES
                    ('wa', 'whatsapp', 'whatsapp_cloud', \(wa)::jsonb), ('sms', 'sms', 'twilio', \(tw)::jsonb)
                """)
            var environment = S.environment
            environment["HERALD_UNSUBSCRIBE_SECRET"] = secret
            return try await S.withWebhooks(db, environment: environment, label: "test.consent") { base, transport, _ in
                try await body(Harness(base: base, c: c, transport: transport))
            }
        }
    }

    // MARK: SMS keywords

    @Test("SMS: STOP, stop! and '  Stop ' opt every contact with that phone out of SMS; START opts them back in; an empty TwiML answer")
    func smsKeywords() async throws {
        try await Self.withServer { h in
            let a = try await WorkerFixtures.contact(h.c, first: "A", phone: Self.phone)
            let b = try await WorkerFixtures.contact(h.c, first: "B", phone: Self.phone)
            let other = try await WorkerFixtures.contact(h.c, first: "C", phone: "+16505550000")
            for text in ["STOP", "stop!", "  Stop "] {
                let r = try await h.sms(text)
                #expect(r.status == 200)
                #expect(r.headers["content-type"]?.hasPrefix("text/xml") == true)
                #expect(String(decoding: r.body, as: UTF8.self).hasSuffix("<Response/>"))
                #expect(try await h.optOuts(a) == ["keyword:sms"], "\(text)")
                #expect(try await h.optOuts(b) == ["keyword:sms"], "\(text)")
            }
            #expect(try await h.optOuts(other) == [])
            #expect(try await h.sms("stop it").status == 200)
            #expect(try await h.sms("START").status == 200)
            #expect(try await h.optOuts(a) == [])
            #expect(try await h.optOuts(b) == [])
        }
    }

    @Test("SMS: a wrong signature is 401 and records nothing")
    func smsSignature() async throws {
        try await Self.withServer { h in
            let a = try await WorkerFixtures.contact(h.c, first: "A", phone: Self.phone)
            #expect(try await h.sms("STOP", authToken: "guess").status == 401)
            #expect(try await h.optOuts(a) == [])
        }
    }

    @Test("START never undoes the admin tool's, a provider's or a link's opt-out")
    func optInKeepsOthers() async throws {
        try await Self.withServer { h in
            let a = try await WorkerFixtures.contact(h.c, first: "A", phone: Self.phone)
            try await h.c.execute("INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (\(a), 'sms'), (\(a), 'whatsapp')")
            #expect(try await h.sms("STOP").status == 200)
            #expect(try await h.optOuts(a) == ["admin:sms", "admin:whatsapp"])
            #expect(try await h.sms("start").status == 200)
            #expect(try await h.whatsApp("START").status == 200)
            #expect(try await h.optOuts(a) == ["admin:sms", "admin:whatsapp"])
        }
    }

    // MARK: WhatsApp keywords

    @Test("WhatsApp: STOP, stop! and '  Stop ' in a text opt out of WhatsApp only; START opts back in")
    func whatsAppKeywords() async throws {
        try await Self.withServer { h in
            let a = try await WorkerFixtures.contact(h.c, first: "A", phone: Self.phone)
            for text in ["STOP", "stop!", "  Stop "] {
                #expect(try await h.whatsApp(text).status == 200)
                #expect(try await h.optOuts(a) == ["keyword:whatsapp"], "\(text)")
            }
            #expect(try await h.whatsApp("please stop").status == 200)
            #expect(try await h.whatsApp("START").status == 200)
            #expect(try await h.optOuts(a) == [])
            #expect(try await h.whatsApp("Does it come in blue?").status == 200)
            #expect(try await h.optOuts(a) == [])
        }
    }

    // MARK: Unsubscribe links

    /// A sent email message to a new contact; returns (message, contact, broadcast).
    static func emailMessage(_ c: PostgresConnection) async throws -> (Int64, Int64, Int64) {
        let contact = try await WorkerFixtures.contact(c, first: "Ada", email: "ada@example.com")
        let (message, broadcast, _) = try await WorkerFixtures.sentMessage(
            c, to: contact, address: "ada@example.com", channel: "mail", kind: "email", provider: "sandbox")
        return (message, contact, broadcast)
    }

    @Test("the link's GET is a small page with one button and writes nothing; POST opts out (source, broadcast, kind); a replay is harmless")
    func linkPageAndPost() async throws {
        try await Self.withServer { h in
            let (message, contact, broadcast) = try await Self.emailMessage(h.c)
            let token = UnsubscribeLinks(publicURL: S.publicURL, secret: Self.secret).token(messageID: message)
            let page = try await h.request("GET", "/unsubscribe/\(token)")
            #expect(page.status == 200)
            #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(html.contains(#"<html lang="en">"#))
            #expect(html.contains(#"<form method="post" action="/unsubscribe/\#(token)">"#))
            #expect(html.components(separatedBy: "<button").count == 2)
            #expect(!html.contains("<script") && !html.contains("http"))
            #expect(try await h.optOuts(contact) == [])

            for _ in 0..<2 {
                #expect(try await h.request("POST", "/unsubscribe/\(token)", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                            body: Array("List-Unsubscribe=One-Click".utf8)).status == 200)
            }
            #expect(try await h.optOuts(contact) == ["unsubscribe_link:email"])
            let row = try await h.c.query("SELECT broadcast_id FROM herald.opt_outs WHERE contact_id = \(contact)")[0]
            #expect(try row.decode(Int64?.self, at: 0) == broadcast)
        }
    }

    @Test("RFC 8058: a bare One-Click POST with no page visited opts out")
    func oneClick() async throws {
        try await Self.withServer { h in
            let (message, contact, _) = try await Self.emailMessage(h.c)
            let url = UnsubscribeLinks(publicURL: S.publicURL, secret: Self.secret).url(messageID: message)
            let path = String(url.dropFirst(S.publicURL.count))
            #expect(try await h.request("POST", path, headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                        body: Array("List-Unsubscribe=One-Click".utf8)).status == 200)
            #expect(try await h.optOuts(contact) == ["unsubscribe_link:email"])
        }
    }

    @Test("a wrong, altered or truncated token is 400 on GET and POST and writes nothing")
    func tamperedToken() async throws {
        try await Self.withServer { h in
            let (message, contact, _) = try await Self.emailMessage(h.c)
            let token = UnsubscribeLinks(publicURL: S.publicURL, secret: Self.secret).token(messageID: message)
            let mac = token.split(separator: ".")[1]
            let foreign = UnsubscribeLinks(publicURL: S.publicURL, secret: "not-ours").token(messageID: message)
            var altered = Array(token)
            altered[altered.count - 2] = altered[altered.count - 2] == "x" ? "y" : "x"
            for bad in [String(altered), String(token.dropLast(3)), "\(message + 1).\(mac)", foreign, "x"] {
                #expect(try await h.request("GET", "/unsubscribe/\(bad)").status == 400, "\(bad)")
                #expect(try await h.request("POST", "/unsubscribe/\(bad)", body: Array("List-Unsubscribe=One-Click".utf8)).status == 400, "\(bad)")
            }
            #expect(try await h.optOuts(contact) == [])
        }
    }
}
