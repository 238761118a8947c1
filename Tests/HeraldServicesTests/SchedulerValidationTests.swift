import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// One way a broadcast fails validation: how to write it, and the exact `broadcasts.error`.
struct ValidationCase: Sendable, CustomTestStringConvertible {
    var name: String
    var error: String
    /// Writes the channel, template and broadcast; returns the broadcast's id. Every broadcast
    /// gets one valid contact in its audience unless the case is about the audience.
    var setup: @Sendable (PostgresConnection, _ contact: Int64) async throws -> Int64
    var testDescription: String { name }

    /// Writes the case's broadcast, runs a scheduler until it leaves `scheduled`, and expects it
    /// `failed` with the case's error and finished, with no message and no job created.
    func expectFailsValidation() async throws {
        typealias F = SchedulerFixtures
        try await withTestConnection { db, c in
            let id = try await setup(c, try await F.contact(c))
            try await F.withScheduler(db) {
                try await F.waitUntil("it fails", timeout: .seconds(30)) { try await F.status(c, id) != "scheduled" }
            }
            #expect(try await F.status(c, id) == "failed")
            #expect(try await F.error(c, id) == error)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE id = \(id) AND finished_at IS NOT NULL") == 1)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.messages") == 0)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.jobs") == 0)
        }
    }
}

@Suite("Scheduler: validation")
struct SchedulerValidationTests {
    typealias F = SchedulerFixtures

    static let waCloud = #"{"phone_number_id": "123", "access_token_env": "WA_TOKEN"}"#
    static let smtp = #"{"url": "smtp://127.0.0.1:2525", "from": "Shop <shop@example.com>"}"#

    static func whatsApp(_ c: PostgresConnection, name: String = "wa") async throws -> Int64 {
        try await F.channel(c, name: name, kind: "whatsapp", provider: "whatsapp_cloud", settings: waCloud)
    }

    static func template(_ c: PostgresConnection, channel: Int64, body: String = "Hello {{1}}, your code is {{2}}",
                         status: String = "approved") async throws -> Int64 {
        try await c.query("""
            INSERT INTO herald.templates (channel_id, name, language, body, status)
            VALUES (\(channel), 'promo', 'en_US', \(body), \(status)) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    static let cases: [ValidationCase] = [
        ValidationCase(name: "channel disabled", error: #"channel "sms" is disabled"#) { c, contact in
            let ch = try await F.channel(c, enabled: false)
            return try await F.broadcast(c, channel: ch, contacts: [contact])
        },
        ValidationCase(name: "whatsapp_cloud settings", error: #"channel "wa": setting "phone_number_id" is required"#) { c, contact in
            let ch = try await F.channel(c, name: "wa", kind: "whatsapp", provider: "whatsapp_cloud", settings: #"{"access_token_env": "T"}"#)
            return try await F.broadcast(c, channel: ch, contacts: [contact])
        },
        ValidationCase(name: "twilio settings", error: #"channel "tw": setting "from" or "messaging_service_sid" is required"#) { c, contact in
            let ch = try await F.channel(c, name: "tw", kind: "sms", provider: "twilio",
                                         settings: #"{"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token_env": "TW"}"#)
            return try await F.broadcast(c, channel: ch, contacts: [contact])
        },
        ValidationCase(name: "smtp settings", error: #"channel "mail": setting "from" is required"#) { c, contact in
            let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: #"{"url": "smtp://h:25"}"#)
            return try await F.broadcast(c, channel: ch, subject: "S", contacts: [contact])
        },
        ValidationCase(name: "template missing", error: "template 424242 does not exist") { c, contact in
            let ch = try await whatsApp(c)
            // Only a broken foreign key can leave a dangling template_id; simulate one.
            try await c.simpleQuery("SET session_replication_role = replica")
            let id = try await F.broadcast(c, channel: ch, body: nil, template: 424242, contacts: [contact])
            try await c.simpleQuery("SET session_replication_role = origin")
            return id
        },
        ValidationCase(name: "template of another channel", error: #"template "promo" belongs to another channel, not "wa""#) { c, contact in
            let ch = try await whatsApp(c)
            let other = try await whatsApp(c, name: "wa2")
            let t = try await template(c, channel: other)
            return try await F.broadcast(c, channel: ch, body: nil, template: t, templateParams: #"["a", "b"]"#, contacts: [contact])
        },
        ValidationCase(name: "template pending", error: #"template "promo" is not approved (status: pending)"#) { c, contact in
            let ch = try await whatsApp(c)
            let t = try await template(c, channel: ch, status: "pending")
            return try await F.broadcast(c, channel: ch, body: nil, template: t, templateParams: #"["a", "b"]"#, contacts: [contact])
        },
        ValidationCase(name: "template rejected", error: #"template "promo" is not approved (status: rejected)"#) { c, contact in
            let ch = try await whatsApp(c)
            let t = try await template(c, channel: ch, status: "rejected")
            return try await F.broadcast(c, channel: ch, body: nil, template: t, templateParams: #"["a", "b"]"#, contacts: [contact])
        },
        ValidationCase(name: "template_params count", error: #"template "promo" has 2 placeholder(s) but template_params has 1 value(s)"#) { c, contact in
            let ch = try await whatsApp(c)
            let t = try await template(c, channel: ch)
            return try await F.broadcast(c, channel: ch, body: nil, template: t, templateParams: #"["a"]"#, contacts: [contact])
        },
        ValidationCase(name: "template_params missing", error: #"template "promo" has 2 placeholder(s) but template_params has 0 value(s)"#) { c, contact in
            let ch = try await whatsApp(c)
            let t = try await template(c, channel: ch)
            return try await F.broadcast(c, channel: ch, body: nil, template: t, contacts: [contact])
        },
        ValidationCase(name: "template_params not strings", error: "template_params[1] is not a string") { c, contact in
            // Migration 0008 refuses such a write; a row written before it still fails validation.
            try await c.simpleQuery("ALTER TABLE herald.broadcasts DROP CONSTRAINT broadcasts_template_params_strings")
            let ch = try await whatsApp(c)
            let t = try await template(c, channel: ch)
            return try await F.broadcast(c, channel: ch, body: nil, template: t, templateParams: #"["a", 2]"#, contacts: [contact])
        },
        ValidationCase(name: "unknown tag in body", error: "unknown personalization tag {{ frist_name }} in body") { c, contact in
            let ch = try await F.channel(c)
            return try await F.broadcast(c, channel: ch, body: "Hi {{ frist_name }}", contacts: [contact])
        },
        ValidationCase(name: "unknown tag in subject", error: "unknown personalization tag {{ shoe_size }} in subject") { c, contact in
            let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: smtp)
            return try await F.broadcast(c, channel: ch, subject: "For {{ shoe_size }}", contacts: [contact])
        },
        ValidationCase(name: "unknown tag in html_body", error: "unknown personalization filter in {{ name | upcase }} in html_body") { c, contact in
            let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: smtp)
            return try await F.broadcast(c, channel: ch, subject: "S", htmlBody: "<p>{{ name | upcase }}</p>", contacts: [contact])
        },
        ValidationCase(name: "unknown tag in template_params", error: "unknown personalization tag {{ city }} in template_params[1]") { c, contact in
            let ch = try await whatsApp(c)
            let t = try await template(c, channel: ch)
            return try await F.broadcast(c, channel: ch, body: nil, template: t,
                                         templateParams: #"["{{ first_name }}", "{{ city }}"]"#, contacts: [contact])
        },
        ValidationCase(name: "unknown tag in unsubscribe_url",
                       error: #"unknown personalization tag {{ token }} in the unsubscribe_url of channel "mail""#) { c, contact in
            let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: """
                {"url": "smtp://h:25", "from": "a@b.co", "unsubscribe_url": "https://x.co/u?t={{ token }}"}
                """)
            return try await F.broadcast(c, channel: ch, subject: "S", contacts: [contact])
        },
        ValidationCase(name: "email without subject", error: "subject is empty: an email broadcast needs one") { c, contact in
            let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: smtp)
            return try await F.broadcast(c, channel: ch, subject: "  ", contacts: [contact])
        },
        ValidationCase(name: "email without any body", error: "body and html_body are both empty: an email broadcast needs one") { c, contact in
            let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: smtp)
            return try await F.broadcast(c, channel: ch, body: nil, subject: "S", htmlBody: "", contacts: [contact])
        },
        ValidationCase(name: "sms without body", error: "body is empty: an SMS broadcast needs one") { c, contact in
            let ch = try await F.channel(c)
            return try await F.broadcast(c, channel: ch, body: "", contacts: [contact])
        },
        ValidationCase(name: "whatsapp without template or body",
                       error: "body is empty: a WhatsApp broadcast without a template needs one") { c, contact in
            let ch = try await whatsApp(c)
            return try await F.broadcast(c, channel: ch, body: nil, contacts: [contact])
        },
        ValidationCase(name: "template on an sms channel", error: #"a template is only for WhatsApp, but channel "sms" is sms"#) { c, contact in
            let ch = try await F.channel(c)
            let t = try await template(c, channel: ch)
            return try await F.broadcast(c, channel: ch, template: t, templateParams: #"["a", "b"]"#, contacts: [contact])
        },
        ValidationCase(name: "no audience at all", error: SchedulerValidation.noAudience) { c, _ in
            let ch = try await F.channel(c)
            return try await F.broadcast(c, channel: ch)
        },
        ValidationCase(name: "groups without members", error: SchedulerValidation.emptyAudience) { c, _ in
            let ch = try await F.channel(c)
            let g = try await F.group(c, "empty", members: [])
            return try await F.broadcast(c, channel: ch, groups: [g])
        },
    ]

    @Test("a broadcast that fails validation ends failed with its error, and nothing is created", arguments: cases)
    func fails(_ testCase: ValidationCase) async throws {
        try await testCase.expectFailsValidation()
    }

    @Test("a valid WhatsApp template broadcast passes and starts")
    func validTemplate() async throws {
        try await withTestConnection { db, c in
            let contact = try await F.contact(c)
            let ch = try await Self.whatsApp(c)
            let t = try await Self.template(c, channel: ch)
            let id = try await F.broadcast(c, channel: ch, body: nil, template: t,
                                           templateParams: #"["{{ first_name | default: \"there\" }}", "X1"]"#, contacts: [contact])
            try await F.runSchedulerUntilStarted(db, c, id)
            #expect(try await F.status(c, id) == "sending")
            #expect(try await F.error(c, id) == nil)
            #expect(try await F.jobCount(c, id) == 1)
        }
    }
}
