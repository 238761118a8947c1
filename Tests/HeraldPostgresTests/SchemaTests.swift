import Foundation
import HeraldPostgres
import HeraldTesting
import Testing

@Suite("The schema takes what the admin tool writes and refuses what the contract forbids")
struct SchemaTests {
    @Test("a full example of every contract table")
    func fullExample() async throws {
        try await withTestConnection { db, conn in
            try await conn.simpleQuery("""
                INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst, enabled) VALUES
                  ('wa-main', 'whatsapp', 'whatsapp_cloud', '{"phone_number_id":"1055","access_token_env":"WA_TOKEN","app_secret_env":"WA_SECRET","verify_token_env":"WA_VERIFY"}', 80, 10, true),
                  ('sms-ng', 'sms', 'twilio', '{"account_sid":"AC123","auth_token_env":"TW_TOKEN","from":"+15005550006"}', 1.5, 1, true),
                  ('mail', 'email', 'smtp', '{"url":"smtps://smtp.example.com:465","from":"Shop <news@shop.example>","unsubscribe_url":"https://shop.example/u/{{ contact_id }}"}', 20, 5, true),
                  ('demo', 'sms', 'sandbox', '{"latency_ms":5,"failure_rate":0.01}', 1000, 100, false);
                INSERT INTO herald.contacts (first_name, last_name, phone, email, attributes, last_inbound_at) VALUES
                  ('Adéwálé', 'Ọ̀ṣun', '+2348031234567', 'ade@example.com', '{"city":"Ìbàdàn","tier":"gold"}', now() - interval '1 hour'),
                  (NULL, NULL, NULL, NULL, NULL, NULL);
                INSERT INTO herald.opt_outs (contact_id, channel_kind) SELECT min(id), 'sms' FROM herald.contacts;
                INSERT INTO herald.groups (name) VALUES ('vip');
                INSERT INTO herald.group_members (group_id, contact_id) SELECT g.id, c.id FROM herald.groups g, herald.contacts c;
                INSERT INTO herald.templates (channel_id, name, language, body, status)
                  SELECT id, 'order_update_2', 'en_US', 'Hi {{1}}, your order {{2}} shipped', 'approved' FROM herald.channels WHERE name = 'wa-main';
                INSERT INTO herald.broadcasts (name, channel_id, template_id, template_params, send_at, status)
                  SELECT 'Black Friday', c.id, t.id, '["{{ first_name | default: \\"there\\" }}", "BF-1"]', now() + interval '1 day', 'scheduled'
                  FROM herald.channels c JOIN herald.templates t ON t.channel_id = c.id;
                INSERT INTO herald.broadcasts (name, channel_id, subject, body, html_body, status)
                  SELECT 'Newsletter', id, 'Hello {{ first_name }}', 'Text', '<p>HTML</p>', 'draft' FROM herald.channels WHERE name = 'mail';
                INSERT INTO herald.broadcast_groups SELECT b.id, g.id FROM herald.broadcasts b, herald.groups g;
                INSERT INTO herald.broadcast_contacts SELECT b.id, c.id FROM herald.broadcasts b, herald.contacts c;
                """)
            let counts = try await conn.query("""
                SELECT (SELECT count(*) FROM herald.channels), (SELECT count(*) FROM herald.broadcasts),
                       (SELECT count(*) FROM herald.broadcast_contacts), (SELECT count(*) FROM herald.broadcast_report),
                       (SELECT count(*) FROM herald.message_status), (SELECT count(*) FROM herald.delivery_receipts)
                """)[0]
            #expect(try counts.decode(Int.self, at: 0) == 4)
            #expect(try counts.decode(Int.self, at: 1) == 2)
            #expect(try counts.decode(Int.self, at: 2) == 4)
            #expect(try counts.decode(Int.self, at: 3) == 2)
            #expect(try counts.decode(Int.self, at: 4) == 0)
        }
    }

    @Test("forbidden values are rejected by name", arguments: [
        ("INSERT INTO herald.channels (name, kind, provider) VALUES ('x', 'fax', 'sandbox')", "channels_kind_check"),
        ("INSERT INTO herald.channels (name, kind, provider) VALUES ('x', 'sms', 'carrier_pigeon')", "channels_provider_check"),
        ("INSERT INTO herald.channels (name, kind, provider, rate_per_second) VALUES ('x', 'sms', 'sandbox', 0)", "channels_rate_positive"),
        ("INSERT INTO herald.channels (name, kind, provider, rate_per_second) VALUES ('x', 'sms', 'sandbox', -1)", "channels_rate_positive"),
        ("INSERT INTO herald.channels (name, kind, provider, burst) VALUES ('x', 'sms', 'sandbox', 0)", "channels_burst_check"),
        ("INSERT INTO herald.channels (name, kind, provider) VALUES ('x', 'email', 'twilio')", "channels_provider_kind"),
        ("INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (1, 'pager')", "opt_outs_kind_check"),
        ("INSERT INTO herald.templates (channel_id, name, language, body) VALUES (1, 'Order-Update', 'en_US', 'x')", "templates_name_check"),
        ("INSERT INTO herald.templates (channel_id, name, language, body, status) VALUES (1, 'ok', 'en_US', 'x', 'maybe')", "templates_status_check"),
        ("INSERT INTO herald.broadcasts (name, channel_id, status) VALUES ('b', 1, 'launched')", "broadcasts_status_check"),
        ("INSERT INTO herald.broadcasts (name, channel_id, template_params) VALUES ('b', 1, '{\"a\":1}')", "broadcasts_template_params_array"),
        ("INSERT INTO herald.broadcasts (name, channel_id) VALUES ('b', 424242)", "broadcasts_channel_id_fkey"),
    ])
    func rejects(sql: String, constraint: String) async throws {
        try await withTestConnection { db, conn in
            try await conn.simpleQuery("""
                INSERT INTO herald.channels (name, kind, provider) VALUES ('base', 'whatsapp', 'sandbox');
                INSERT INTO herald.contacts (first_name) VALUES ('a');
                """)
            let error = await #expect(throws: PostgresError.self) { try await conn.simpleQuery(sql) }
            #expect(error?.message.contains(constraint) == true, "\(String(describing: error))")
        }
    }
}
