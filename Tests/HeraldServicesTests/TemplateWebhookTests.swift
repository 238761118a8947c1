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

/// `message_template_status_update` notifications on `POST /webhooks/whatsapp`, over real HTTP
/// with a real database.
@Suite("Templates: status notifications at the webhooks server")
struct TemplateWebhookTests {
    typealias S = WebhookServerTests
    static let waba = "102290129340398"

    struct Harness {
        let base: String
        let c: PostgresConnection
        let transport: CurlTransport
        let channel: Int64

        func post(_ body: [UInt8], signed: Bool = true) async throws -> HTTPResponse {
            var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
            if signed { headers.append(("X-Hub-Signature-256", WebhookSignature.meta(body: body, appSecret: S.appSecret))) }
            return try await transport.execute(HTTPRequest(method: "POST", url: base + "/webhooks/whatsapp", headers: headers,
                                                           body: body, timeout: .seconds(10)))
        }

        func template(_ name: String) async throws -> String {
            let r = try await c.query("SELECT status, coalesce(status_reason, '-') FROM herald.templates WHERE name = \(name)")[0]
            return "\(try r.decode(String.self, at: 0))|\(try r.decode(String.self, at: 1))"
        }
    }

    /// A webhooks server whose WhatsApp channel has `waba_id` and one approved template `promo`
    /// (Meta id 77); another channel of another app secret has the same template.
    static func withServer<T: Sendable>(_ body: (Harness) async throws -> T) async throws -> T {
        try await withTestConnection { db, c in
            let wa = #"{"phone_number_id":"\#(S.phoneNumberID)","access_token_env":"WA_TOKEN","app_secret_env":"WA_SECRET","waba_id":"\#(waba)"}"#
            let channel = try await c.query("""
                INSERT INTO herald.channels (name, kind, provider, settings) VALUES ('wa', 'whatsapp', 'whatsapp_cloud', \(wa)::jsonb)
                RETURNING id
                """)[0].decode(Int64.self, at: 0)
            try await c.execute("""
                INSERT INTO herald.templates (channel_id, name, language, body, status, meta_template_id)
                VALUES (\(channel), 'promo', 'en_US', 'Hi {{1}}', 'approved', '77'), (\(channel), 'other', 'en_US', 'Yo', 'approved', '78')
                """)
            return try await S.withWebhooks(db, environment: S.environment, label: "test.templates.webhook") { base, transport, _ in
                try await body(Harness(base: base, c: c, transport: transport, channel: channel))
            }
        }
    }

    @Test("each event moves the template as the contract maps it, with the reason; a replay changes nothing more")
    func eventMapping() async throws {
        try await Self.withServer { h in
            let steps: [(event: String, reason: String, expected: String)] = [
                ("PAUSED", "Low quality: paused for 3 hours", "paused|Low quality: paused for 3 hours"),
                ("APPROVED", "NONE", "approved|-"),
                ("REJECTED", "INCORRECT_CATEGORY", "rejected|INCORRECT_CATEGORY"),
                ("PENDING", "NONE", "pending|-"),
                ("IN_APPEAL", "NONE", "pending|-"),
                ("DISABLED", "NONE", "disabled|-"),
                ("APPROVED", "NONE", "approved|-"),
            ]
            for step in steps {
                let body = GraphTemplatesDouble.statusNotification(wabaID: Self.waba, event: step.event, templateID: "77",
                                                                   name: "promo", reason: step.reason)
                let answer = try await h.post(body)
                #expect(answer.status == 200, "\(step.event)")
                #expect(try await h.template("promo") == step.expected, "\(step.event)")
                #expect(try await h.template("other") == "approved|-")
            }
            // Meta delivers a notification again: it changes nothing more.
            let last = GraphTemplatesDouble.statusNotification(wabaID: Self.waba, event: "APPROVED", templateID: "77", name: "promo")
            #expect(try await h.post(last).status == 200)
            #expect(try await h.template("promo") == "approved|-")
            // Found by name and language when Meta's id is not known yet.
            try await h.c.execute("UPDATE herald.templates SET meta_template_id = NULL WHERE name = 'other'")
            _ = try await h.post(GraphTemplatesDouble.statusNotification(wabaID: Self.waba, event: "PAUSED", templateID: "78",
                                                                         name: "other", reason: "quality"))
            #expect(try await h.template("other") == "paused|quality")
            #expect(try await h.c.query("SELECT meta_template_id FROM herald.templates WHERE name = 'other'")[0].decode(String?.self, at: 0) == "78")
        }
    }

    @Test("PAUSED pauses the running broadcasts of that template with the reason; other broadcasts keep sending; APPROVED leaves the resume to the admin tool")
    func pausesRunningBroadcasts() async throws {
        try await Self.withServer { h in
            func broadcast(_ template: String, _ status: String) async throws -> Int64 {
                try await h.c.query("""
                    INSERT INTO herald.broadcasts (name, channel_id, template_id, template_params, status, started_at, expanded_at)
                    SELECT 'b', \(h.channel), id, '["x"]', \(status), now(), now() FROM herald.templates WHERE name = \(template)
                    RETURNING id
                    """)[0].decode(Int64.self, at: 0)
            }
            func state(_ id: Int64) async throws -> String {
                let r = try await h.c.query("SELECT status, coalesce(error, '-') FROM herald.broadcasts WHERE id = \(id)")[0]
                return "\(try r.decode(String.self, at: 0))|\(try r.decode(String.self, at: 1))"
            }
            let running = try await broadcast("promo", "sending")
            let scheduled = try await broadcast("promo", "scheduled")
            let other = try await broadcast("other", "sending")
            _ = try await h.post(GraphTemplatesDouble.statusNotification(wabaID: Self.waba, event: "PAUSED", templateID: "77",
                                                                         name: "promo", reason: "Low quality"))
            #expect(try await state(running) == "paused|Meta paused the template promo (en_US): Low quality; resume the broadcast once Meta approves the template again")
            #expect(try await state(scheduled) == "scheduled|-")
            #expect(try await state(other) == "sending|-")
            _ = try await h.post(GraphTemplatesDouble.statusNotification(wabaID: Self.waba, event: "APPROVED", templateID: "77", name: "promo"))
            #expect(try await state(running).hasPrefix("paused|"), "only the admin tool resumes a broadcast")
        }
    }

    @Test("an unsigned or wrongly signed notification is refused with 401 and changes nothing")
    func unsigned() async throws {
        try await Self.withServer { h in
            let body = GraphTemplatesDouble.statusNotification(wabaID: Self.waba, event: "PAUSED", templateID: "77", name: "promo")
            #expect(try await h.post(body, signed: false).status == 401)
            var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
            headers.append(("X-Hub-Signature-256", WebhookSignature.meta(body: body, appSecret: "another-secret")))
            let wrong = try await h.transport.execute(HTTPRequest(method: "POST", url: h.base + "/webhooks/whatsapp", headers: headers,
                                                                  body: body, timeout: .seconds(10)))
            #expect(wrong.status == 401)
            #expect(try await h.template("promo") == "approved|-")
        }
    }

    @Test("a signed notification for a WhatsApp Business Account that is not the channel's changes nothing")
    func otherAccount() async throws {
        try await Self.withServer { (h: Harness) async throws -> Void in
            let body = GraphTemplatesDouble.statusNotification(wabaID: "999", event: "PAUSED", templateID: "77", name: "promo")
            #expect(try await h.post(body).status == 200)
            #expect(try await h.template("promo") == "approved|-")
        }
    }
}
