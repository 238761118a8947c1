import Foundation
import HeraldPostgres
import HeraldProviders
import HeraldServices
import HeraldStore
import HeraldTesting
import HeraldTransport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A receipt speaks only for the channels that share the secret that signed it; replays are
/// stored once; slow clients are cut.
@Suite("Webhooks: trust boundaries")
struct WebhookTrustTests {
    typealias Server = WebhookServerTests

    static let secretB = "app-b-secret"
    static let phoneB = "200000000000002"
    static let tokenC = "twilio-c-token"
    static let accountC = "AC00000000000000000000000000000003"
    static let environment = Server.environment.merging(["WA_SECRET_B": secretB, "TW_TOKEN_C": tokenC]) { $1 }

    /// Adds WhatsApp channel B (another Meta app) and Twilio channel C (another account), each
    /// with one message: B's sent (`wamid.<id>`) and one queued with its job; C's sent (`SM<id>`).
    static func otherChannels(_ h: Server.Harness) async throws -> (bSent: Int64, bQueued: Int64, cSent: Int64) {
        let b = #"{"phone_number_id":"\#(phoneB)","access_token_env":"WA_TOKEN","app_secret_env":"WA_SECRET_B"}"#
        let c = #"{"account_sid":"\#(accountC)","auth_token_env":"TW_TOKEN_C","from":"+15005550007"}"#
        try await h.c.execute("""
            INSERT INTO herald.channels (id, name, kind, provider, settings) OVERRIDING SYSTEM VALUE VALUES
                (10, 'wa-b', 'whatsapp', 'whatsapp_cloud', \(b)::jsonb), (11, 'sms-c', 'sms', 'twilio', \(c)::jsonb)
            """)
        let ada = try await WorkerFixtures.contact(h.c, first: "Ada", phone: "+16505550000")
        let grace = try await WorkerFixtures.contact(h.c, first: "Grace", phone: "+16505550001")
        let rows = try await h.c.query("""
            WITH b AS (
                INSERT INTO herald.broadcasts (name, channel_id, status) VALUES ('b', 10, 'sending'), ('c', 11, 'sending')
                RETURNING id, channel_id
            )
            INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address, status, sent_at)
            SELECT b.id, CASE WHEN s = 'sent' THEN \(ada)::bigint ELSE \(grace)::bigint END, b.channel_id, '+16505550000', s,
                   CASE WHEN s = 'sent' THEN now() END
            FROM b CROSS JOIN (VALUES ('sent'), ('queued')) AS v(s)
            WHERE b.channel_id = 10 OR s = 'sent'
            RETURNING id, channel_id, status
            """)
        var bSent: Int64 = 0, bQueued: Int64 = 0, cSent: Int64 = 0
        for r in rows {
            let id = try r.decode(Int64.self, at: 0)
            switch (try r.decode(Int64.self, at: 1), try r.decode(String.self, at: 2)) {
            case (10, "sent"): bSent = id
            case (10, _): bQueued = id
            default: cSent = id
            }
        }
        try await h.c.execute("""
            UPDATE herald.messages SET provider_message_id = CASE WHEN channel_id = 10 THEN 'wamid.' || id ELSE 'SM' || id END
            WHERE id IN (\(bSent), \(cSent))
            """)
        try await h.c.execute("INSERT INTO herald.jobs (message_id, broadcast_id, channel_id) SELECT id, broadcast_id, channel_id FROM herald.messages WHERE id = \(bQueued)")
        return (bSent, bQueued, cSent)
    }

    /// A positive signal that the applier has been through every receipt stored before now: a
    /// receipt signed by A for A's own channel, naming a message that is created only after the
    /// receipt is stored. Whichever pass applies it (the next immediate pass, which takes every
    /// receipt handed over before it, or the retry pass, which examines every pending receipt
    /// older than it, lowest id first) has examined the receipts stored earlier too. Call once.
    static func applierCaughtUp(_ h: Server.Harness) async throws -> Bool {
        let id: Int64 = 900_000
        let body = Server.metaStatus("wamid.\(id)", "delivered", callback: id)
        let signature = WebhookSignature.meta(body: Array(body.utf8), appSecret: Server.appSecret)
        guard try await h.postWhatsApp(body, signature: signature).status == 200 else { return false }
        let contact = try await WorkerFixtures.contact(h.c, first: "Marker", phone: "+16505559999")
        try await h.c.execute("""
            WITH b AS (INSERT INTO herald.broadcasts (name, channel_id, status) VALUES ('marker', 1, 'sending') RETURNING id)
            INSERT INTO herald.messages (id, broadcast_id, contact_id, channel_id, address, status, sent_at)
            OVERRIDING SYSTEM VALUE SELECT \(id)::bigint, b.id, \(contact)::bigint, 1, '+16505559999', 'sent', now() FROM b
            """)
        return try await h.eventually { try await h.status(id) == "delivered" }
    }

    func signedA(_ body: String) -> String { WebhookSignature.meta(body: Array(body.utf8), appSecret: Server.appSecret) }

    @Test("a status signed with app A's secret naming channel B's number changes nothing and is counted")
    func otherPhoneNumber() async throws {
        try await Server.withServer(environment: Self.environment) { h in
            let m = try await Self.otherChannels(h)
            for (id, status) in [(m.bSent, "read"), (m.bQueued, "failed")] {
                let body = Server.metaStatus("wamid.\(id)", status, callback: id, phoneNumberID: Self.phoneB)
                #expect(try await h.postWhatsApp(body, signature: signedA(body)).status == 200, "A's secret verifies the request itself")
            }
            #expect(try await h.receiptCount() == 0, "nothing of B's is stored on A's word")
            #expect(try await h.status(m.bSent) == "sent")
            #expect(try await h.status(m.bQueued) == "queued")
            let metrics = try await h.request("GET", "/metrics")
            let samples = try PrometheusText.parse(String(decoding: metrics.body, as: UTF8.self))
            #expect(samples[#"herald_webhook_ignored_total{provider="whatsapp_cloud"}"#] == 2)
        }
    }

    @Test("a status signed with app A's secret, under A's number but naming B's messages by Herald's id, matches nothing")
    func otherMessageID() async throws {
        try await Server.withServer(environment: Self.environment) { h in
            let m = try await Self.otherChannels(h)
            for (id, status) in [(m.bSent, "read"), (m.bQueued, "failed")] {
                // Herald's ids are sequential: guessing B's is easy; the wamid of a queued one is unknown.
                let body = Server.metaStatus("wamid.forged\(id)", status, callback: id)
                #expect(try await h.postWhatsApp(body, signature: signedA(body)).status == 200)
            }
            #expect(try await h.receiptCount() == 2)
            #expect(try await Self.applierCaughtUp(h), "the applier has been through the forged receipts")
            let applied = try await h.c.query("SELECT count(*) FROM herald.delivery_receipts WHERE applied_at IS NOT NULL AND provider_message_id LIKE 'wamid.forged%'")
            #expect(try applied[0].decode(Int.self, at: 0) == 0)
            #expect(try await h.status(m.bSent) == "sent")
            #expect(try await h.status(m.bQueued) == "queued")
            let jobs = try await h.c.query("SELECT count(*) FROM herald.jobs WHERE message_id = \(m.bQueued)")[0].decode(Int.self, at: 0)
            #expect(jobs == 1, "B's queued message keeps its job: it will still be sent")
            // The same receipt signed by B's own secret applies.
            let body = Server.metaStatus("wamid.\(m.bSent)", "read", callback: m.bSent, phoneNumberID: Self.phoneB)
            let signedB = WebhookSignature.meta(body: Array(body.utf8), appSecret: Self.secretB)
            // B's channel was added moments ago: the server learns its secret within a refresh.
            #expect(try await h.eventually { try await h.postWhatsApp(body, signature: signedB).status == 200 })
            #expect(try await h.eventually { try await h.status(m.bSent) == "read" })
        }
    }

    @Test("a Twilio callback signed by account A naming account C's message changes nothing")
    func twilioOtherAccount() async throws {
        try await Server.withServer(environment: Self.environment) { h in
            let m = try await Self.otherChannels(h)
            let url = Server.twilioURL(m.cSent)
            // A's account and token, C's message id in the (signed) callback URL.
            let fields = Server.twilioCallback("SM\(m.cSent)", "undelivered", errorCode: "30003")
            let signature = WebhookSignature.twilio(url: url, parameters: fields, authToken: Server.authToken)
            #expect(try await h.postTwilio(fields, message: m.cSent, signature: signature).status == 200)
            // Naming C's account but signed with A's token: refused outright.
            let asC = Server.twilioCallback("SM\(m.cSent)", "undelivered", errorCode: "30003", account: Self.accountC)
            let forged = WebhookSignature.twilio(url: url, parameters: asC, authToken: Server.authToken)
            #expect(try await h.postTwilio(asC, message: m.cSent, signature: forged).status == 401)
            #expect(try await Self.applierCaughtUp(h), "the applier has been through the forged receipt")
            #expect(try await h.status(m.cSent) == "sent")
            // C's own token applies it.
            let own = WebhookSignature.twilio(url: url, parameters: asC, authToken: Self.tokenC)
            #expect(try await h.eventually { try await h.postTwilio(asC, message: m.cSent, signature: own).status == 200 })
            #expect(try await h.eventually { try await h.status(m.cSent) == "failed" })
        }
    }

    @Test("a replayed receipt is stored once")
    func replayStoredOnce() async throws {
        try await Server.withServer { h in
            let (wa, sms) = try await Server.sentMessages(h.c)
            let body = Server.metaStatus("wamid.\(wa)", "delivered", callback: wa)
            let fields = Server.twilioCallback("SM\(sms)", "delivered")
            let twilioSignature = WebhookSignature.twilio(url: Server.twilioURL(sms), parameters: fields, authToken: Server.authToken)
            for _ in 0..<3 {
                #expect(try await h.postWhatsApp(body, signature: signedA(body)).status == 200)
                #expect(try await h.postTwilio(fields, message: sms, signature: twilioSignature).status == 200)
            }
            #expect(try await h.receiptCount() == 2)
            #expect(try await h.eventually { try await h.status(wa) == "delivered" })
            #expect(try await h.eventually { try await h.status(sms) == "delivered" })
        }
    }

    @Test("unsigned bodies are refused before they are parsed: 401, not 400")
    func verifyBeforeParse() async throws {
        try await Server.withServer { h in
            for body in ["{", String(repeating: "[", count: 50_000), "not json"] {
                let response = try await h.postWhatsApp(body, signature: "sha256=" + String(repeating: "0", count: 64))
                #expect(response.status == 401)
            }
            let stored = try await h.receiptCount()
            #expect(stored == 0)
        }
    }

    @Test("a client that sends its request too slowly is cut after the read timeout")
    func slowClient() async throws {
        try await Server.withServer(readTimeout: .milliseconds(800)) { h in
            let port = try #require(h.server.boundPort)
            // Timed from before the connection: the server's deadline runs from its accept.
            let start = ContinuousClock.now
            let connection = try WebhookAdmissionTests.RawConnection(port: port)
            let fd = connection.fd
            // One header byte every 100 ms: never idle, never done.
            let request = Array("POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ".utf8)
            var closedAfter: Duration?
            var i = 0
            while ContinuousClock.now - start < .seconds(10) {
                let byte = i < request.count ? request[i] : UInt8(ascii: "a")
                i += 1
                if send(fd, [byte], 1, Int32(MSG_NOSIGNAL)) < 0 { closedAfter = ContinuousClock.now - start; break }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, 100) > 0 {
                    var buffer = [UInt8](repeating: 0, count: 512)
                    if recv(fd, &buffer, buffer.count, 0) <= 0 { closedAfter = ContinuousClock.now - start; break }
                }
            }
            withExtendedLifetime(connection) {}  // its deinit closes the socket
            let after = try #require(closedAfter, "the server kept the slow connection open for 10 s")
            #expect(after >= .milliseconds(800))
            #expect(after < .seconds(5))
            // Ordinary clients are still served (the health probe may need a moment on a busy machine).
            var status = try await h.request("GET", "/healthz").status
            let deadline = ContinuousClock.now + .seconds(10)
            while status != 200, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                status = try await h.request("GET", "/healthz").status
            }
            #expect(status == 200)
        }
    }
}
