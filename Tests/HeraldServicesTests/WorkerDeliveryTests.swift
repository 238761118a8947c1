import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Synchronization
import Testing

@Suite("Worker: rendering and delivery on each provider's wire format")
struct WorkerDeliveryTests {
    @Test("WhatsApp template parameters are personalized, with fallback, diacritics and emoji, and carry Herald's id")
    func whatsAppTemplate() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double, db, c, channel in
            let ade = try await WorkerFixtures.contact(c, first: "Adéwálé", last: "Ọ̀ṣun 🎉", phone: "+2348031234567",
                                                       attributes: #"{"order":"NG-42"}"#)
            let anon = try await WorkerFixtures.contact(c, first: nil, phone: "+2348031234568", attributes: #"{"order":"NG-43"}"#)
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [ade, anon],
                template: ("order_update", [#"{{ first_name | default: "there" }}"#, "{{ attributes.order }} for {{ name }}"]))
            let done = try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b))
            #expect(done)
            let requests = double.received(.whatsApp).filter { $0.responseStatus == 200 }
            #expect(requests.count == 2)
            let byTo = Dictionary(requests.compactMap { r in r.json?["to"]?.string.map { ($0, r) } }, uniquingKeysWith: { first, _ in first })
            let first = try #require(byTo["+2348031234567"])
            #expect(first.path == "/v21.0/1055/messages")
            #expect(first.headers["authorization"] == "Bearer test-access-token")
            #expect(first.json?["type"]?.string == "template")
            #expect(first.json?["template"]?["name"]?.string == "order_update")
            #expect(first.json?["template"]?["language"]?["code"]?.string == "en_US")
            let params = first.json?["template"]?["components"]?[0]?["parameters"]?.array?.compactMap { $0["text"]?.string }
            #expect(params == ["Adéwálé", "NG-42 for Adéwálé Ọ̀ṣun 🎉"])
            let second = try #require(byTo["+2348031234568"])
            let params2 = second.json?["template"]?["components"]?[0]?["parameters"]?.array?.compactMap { $0["text"]?.string }
            #expect(params2 == ["there", "NG-43 for "])
            // biz_opaque_callback_data is Herald's message id, so receipts match even without the answer.
            let ids = try await c.query("SELECT id::text FROM herald.messages WHERE broadcast_id = \(b) ORDER BY contact_id").map { try $0.decode(String.self, at: 0) }
            #expect(Set(requests.compactMap { $0.json?["biz_opaque_callback_data"]?.string }) == Set(ids))
            let rows = try await c.query("SELECT status, provider_message_id, attempts, sent_at IS NOT NULL FROM herald.message_status WHERE broadcast_id = \(b)")
            for r in rows {
                #expect(try r.decode(String.self, at: 0) == "sent")
                #expect(try r.decode(String.self, at: 1).hasPrefix("wamid."))
                #expect(try r.decode(Int.self, at: 2) == 1)
                #expect(try r.decode(Bool.self, at: 3))
            }
        }
    }

    @Test("Twilio SMS: form fields, basic auth, segments recorded")
    func twilioSMS() async throws {
        try await WorkerFixtures.withChannel(.twilio) { double, db, c, channel in
            let ascii = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let emoji = try await WorkerFixtures.contact(c, first: "Ọlá 😀", phone: "+2348031234568")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [ascii, emoji],
                                                              body: "Hi {{ first_name }} & co: 50% off + free delivery!")
            var config = WorkerFixtures.configuration(db)
            config.publicURL = "https://herald.example"
            #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b)))
            let requests = double.received(.twilio)
            #expect(requests.count == 2)
            let ada = try #require(requests.first { $0.form["To"] == "+2348031234567" })
            #expect(ada.form["Body"] == "Hi Ada & co: 50% off + free delivery!")
            #expect(ada.form["From"] == "+15005550006")
            let adaID = try await c.query("SELECT id FROM herald.messages WHERE address = '+2348031234567'")[0].decode(Int64.self, at: 0)
            #expect(ada.form["StatusCallback"] == "https://herald.example/webhooks/twilio?herald_message_id=\(adaID)")
            #expect(ada.path == "/2010-04-01/Accounts/\(double.configuration.twilioAccountSID)/Messages.json")
            let ola = try #require(requests.first { $0.form["To"] == "+2348031234568" })
            #expect(ola.form["Body"] == "Hi Ọlá 😀 & co: 50% off + free delivery!")
            let segments = try await c.query("""
                SELECT address, segments, status, provider_message_id FROM herald.message_status WHERE broadcast_id = \(b) ORDER BY address
                """).map { (try $0.decode(String.self, at: 0), try $0.decode(Int.self, at: 1), try $0.decode(String.self, at: 2), try $0.decode(String.self, at: 3)) }
            #expect(segments.map(\.1) == [1, 1])
            #expect(segments.allSatisfy { $0.2 == "sent" && $0.3.hasPrefix("SM") })
        }
    }

    @Test("email: subject, escaped HTML, multipart, one-click unsubscribe")
    func email() async throws {
        try await WorkerFixtures.withChannel(.smtp) { double, db, c, channel in
            let who = try await WorkerFixtures.contact(c, first: #"Tom & "Jerry" <3"#, email: "tom@example.com")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who],
                body: "Hello {{ first_name }}", subject: "Offers for {{ first_name }}", html: "<p>Hello {{ first_name }}</p>")
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            let mails = double.receivedMails()
            #expect(mails.count == 1)
            let mail = try #require(mails.first)
            #expect(mail.mailFrom == "news@shop.example")
            #expect(mail.recipients == ["tom@example.com"])
            let text = mail.text
            #expect(text.contains("multipart/alternative"))
            #expect(text.contains("List-Unsubscribe: <https://shop.example/u/\(who)>"))
            #expect(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
            #expect(text.contains("Tom &amp; &quot;Jerry&quot; &lt;3"), "HTML part escapes values")
            #expect(text.contains(#"Hello Tom & "Jerry" <3"#) || text.contains("Hello Tom & =22Jerry=22 <3"), "text part does not escape")
            let status = try await c.query("SELECT status FROM herald.message_status WHERE broadcast_id = \(b)")[0].decode(String.self, at: 0)
            #expect(status == "sent")
        }
    }

    @Test("email to a relay with STARTTLS and a private CA (ca_file, require_tls) goes out inside TLS")
    func emailOverTLS() async throws {
        try await ProviderDouble.with(configuration: .init(smtpTLS: .startTLS)) { double in
            let authority = try TestCertificates.writeAuthority()
            defer { try? FileManager.default.removeItem(atPath: authority) }
            try await withTestConnection { db, c in
                let channel = try await WorkerFixtures.smtpChannel(c, double: double,
                                                                   extra: #","require_tls":true,"ca_file":"\#(authority)""#)
                let who = try await WorkerFixtures.contact(c, first: "Ada", email: "ada@example.com")
                let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who],
                                                                  body: "Hello {{ first_name }}", subject: "Hi")
                #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
                #expect(double.receivedMails().map(\.tls) == [true])
                let status = try await c.query("SELECT status FROM herald.message_status WHERE broadcast_id = \(b)")[0].decode(String.self, at: 0)
                #expect(status == "sent")
            }
        }
    }

    @Test("the worker counts claims, outcomes and provider latency in its metrics")
    func metricsMove() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, rejecting: "+2348031234568", with: .error(code: 131026)) { double, db, c, channel in
            let good = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let bad = try await WorkerFixtures.contact(c, first: "Bola", phone: "+2348031234568")
            let optedOut = try await WorkerFixtures.contact(c, first: "Chi", phone: "+2348031234569")
            try await c.execute("INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (\(optedOut), 'whatsapp')")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [good, bad, optedOut], template: ("promo", ["x"]))
            let metrics = HeraldMetrics()
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), metrics: metrics,
                                                       until: WorkerFixtures.allDone(db, broadcast: b)))
            let text = metrics.exposition()
            func value(_ prefix: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last!) }
            }
            #expect(value(#"herald_messages_claimed_total{channel="wa",provider="whatsapp_cloud"}"#) == 3, "\(text)")
            #expect(text.contains(#"outcome="sent""#) && text.contains(#"outcome="failed""#) && text.contains(#"outcome="skipped""#))
            #expect(value("herald_provider_latency_seconds_count") == 2, "two real sends were timed")
        }
    }

    @Test("the worker's window gauges: its limit, every slot held while a slow provider answers, 0 once all are answered")
    func windowGauges() async throws {
        try await WorkerFixtures.withPromo(to: 40, latency: .milliseconds(400)) { s async throws in
            let metrics = HeraldMetrics()
            var config = WorkerFixtures.configuration(s.db)
            config.maxInFlight = 16
            let peak = Mutex(0.0)
            let done = WorkerFixtures.allDone(s.db, broadcast: s.broadcast)
            #expect(try await WorkerFixtures.runWorker(config, metrics: metrics, until: {
                let now = Self.sample("herald_worker_in_flight", in: metrics.exposition()) ?? -1
                peak.withLock { $0 = max($0, now) }
                return try await done()
            }))
            let text = metrics.exposition()
            #expect(Self.sample("herald_worker_in_flight_limit", in: text) == 16, "\(text)")
            #expect(peak.withLock { $0 } == 16, "a provider that answers after 400 ms holds the whole window")
            #expect(Self.sample("herald_worker_in_flight", in: text) == 0, "\(text)")
        }
    }

    /// The value of the unlabelled series `name` in a Prometheus text exposition.
    static func sample(_ name: String, in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }
}
