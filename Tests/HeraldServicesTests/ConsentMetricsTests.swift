import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// The consent loop on `/metrics`: opt-outs by source and channel kind, and the messages that wait
/// for their channel's messaging tier.
@Suite("Consent: metrics")
struct ConsentMetricsTests {
    @Test("/metrics counts opt-outs by source and kind, and the messages waiting for a tier")
    func optOutsAndTierWaiting() async throws {
        try await withTestConnection { db, c in
            let contacts = try await WorkerFixtures.contacts(c, count: 5)
            // Two keyword opt-outs by SMS, one the admin tool wrote, one from a provider's answer.
            try await c.execute("""
                INSERT INTO herald.opt_outs (contact_id, channel_kind, source) VALUES
                    (\(contacts[0]), 'sms', 'keyword'), (\(contacts[1]), 'sms', 'keyword'),
                    (\(contacts[2]), 'email', NULL), (\(contacts[3]), 'whatsapp', 'provider')
                """)
            // Three messages of a running broadcast put off by the tier until the window frees.
            let channel = try await WorkerFixtures.sandboxChannel(c, name: "tiered", kind: "whatsapp")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: Array(contacts.prefix(3)), body: "hi")
            try await c.execute("""
                INSERT INTO herald.tier_waits (message_id, channel_id)
                SELECT message_id, channel_id FROM herald.jobs WHERE broadcast_id = \(b)
                """)
            try await c.execute("UPDATE herald.jobs SET run_at = now() + interval '6 hours' WHERE broadcast_id = \(b)")

            try await WebhookMetricsTests.withMetricsServer(HeraldMetrics(), databaseURL: db.url) { base, transport in
                var page: [String: Double] = [:]
                let sampled = try await eventually(every: .milliseconds(50)) {
                    page = try await WebhookMetricsTests.scrape(base, transport)
                    return page[#"herald_tier_waiting{channel="tiered"}"#] != nil
                }
                #expect(sampled)
                #expect(page[#"herald_opt_outs{kind="sms",source="keyword"}"#] == 2)
                #expect(page[#"herald_opt_outs{kind="email",source="admin"}"#] == 1)
                #expect(page[#"herald_opt_outs{kind="whatsapp",source="provider"}"#] == 1)
                #expect(page[#"herald_tier_waiting{channel="tiered"}"#] == 3)
            }
        }
    }
}
