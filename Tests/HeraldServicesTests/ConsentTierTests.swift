import Foundation
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Testing

/// The messaging tier (`daily_limit`) at the claim, with two claimers at once and the rolling
/// window driven by moving timestamps back 24 hours (not by waiting).
@Suite("Consent: messaging tier", .serialized)
struct ConsentTierTests {
    /// A WhatsApp sandbox channel with `daily_limit` and a `sending` broadcast to `recipients`
    /// distinct phones; returns (channel, broadcast).
    static func setUp(_ c: PostgresConnection, limit: Int, recipients: Int) async throws -> (Int64, Int64) {
        let channel = try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
            VALUES ('wa', 'whatsapp', 'sandbox', jsonb_build_object('daily_limit', \(limit)::int), 1000000, 100000) RETURNING id
            """)[0].decode(Int64.self, at: 0)
        let contacts = try await WorkerFixtures.contacts(c, count: recipients)
        let template = try await c.query("""
            INSERT INTO herald.templates (channel_id, name, language, body, status) VALUES (\(channel), 'promo', 'en_US', 'Hi', 'approved')
            RETURNING id
            """)[0].decode(Int64.self, at: 0)
        let broadcast = try await c.query("""
            INSERT INTO herald.broadcasts (name, channel_id, template_id, status, started_at, expanded_at)
            VALUES ('tier', \(channel), \(template), 'sending', now(), now()) RETURNING id
            """)[0].decode(Int64.self, at: 0)
        try await c.execute("""
            WITH m AS (
                INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address)
                SELECT \(broadcast), id, \(channel), phone FROM herald.contacts WHERE id = ANY(\(contacts)::bigint[]) RETURNING id
            )
            INSERT INTO herald.jobs (message_id, broadcast_id, channel_id) SELECT id, \(broadcast), \(channel) FROM m
            """)
        return (channel, broadcast)
    }

    /// Two claimers, each on its own connection, claim and record `sent` until neither finds a
    /// due job; returns the message ids each sent.
    static func drain(_ db: TestDatabase, channel: Int64, broadcast: Int64) async throws -> [Int64] {
        try await withThrowingTaskGroup(of: [Int64].self) { group in
            for worker in 0..<2 {
                group.addTask {
                    let c = try await db.connect()
                    defer { Task { await c.close() } }
                    let store = QueueStore()
                    var sent: [Int64] = []
                    while true {
                        let claim = try await store.claim(on: c, broadcastID: broadcast, channelID: channel, kind: .whatsapp, limit: 100,
                                                          lease: .seconds(60), owner: "w\(worker)", attributeKeys: [])
                        if claim.jobs.isEmpty {
                            let due = try await c.query("""
                                SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(broadcast) AND run_at <= now()
                                """)[0].decode(Int.self, at: 0)
                            if due == 0 { break }
                            continue
                        }
                        let outcomes = claim.jobs.map { JobOutcome(messageID: $0.messageID, result: .sent(providerMessageID: "p\($0.messageID)")) }
                        try await store.record(outcomes, owner: "w\(worker)", on: c)
                        sent += claim.jobs.map(\.messageID)
                    }
                    return sent
                }
            }
            var all: [Int64] = []
            for try await part in group { all += part }
            return all
        }
    }

    /// Moves the clock of the tier 24 hours (and a second) forward for this channel: recipients
    /// counted and jobs put off both move back.
    static func passADay(_ c: PostgresConnection, channel: Int64) async throws {
        try await c.execute("UPDATE herald.tier_recipients SET sent_at = sent_at - interval '24 hours 1 second' WHERE channel_id = \(channel)")
        try await c.execute("UPDATE herald.jobs SET run_at = run_at - interval '24 hours 1 second' WHERE channel_id = \(channel)")
    }

    static func waiting(_ c: PostgresConnection) async throws -> Int {
        try await c.query("SELECT coalesce(sum(waiting), 0)::int FROM herald.tier_waiting()")[0].decode(Int.self, at: 0)
    }

    @Test("limit 1,000, 2,500 recipients, two claimers: exactly 1,000 per rolling window, the rest wait queued, none twice")
    func rollingWindow() async throws {
        try await withTestConnection { db, c in
            let (channel, broadcast) = try await Self.setUp(c, limit: 1000, recipients: 2500)

            let first = try await Self.drain(db, channel: channel, broadcast: broadcast)
            #expect(first.count == 1000)
            #expect(try await Self.waiting(c) == 1500)
            #expect(try await WorkerFixtures.statuses(c, broadcast: broadcast) == ["sent": 1000, "queued": 1500])
            // No spin: what waits is not due again before the window frees (about 24 hours).
            let soonest = try await c.query("""
                SELECT min(run_at) > now() + interval '23 hours' FROM herald.jobs WHERE broadcast_id = \(broadcast)
                """)[0].decode(Bool.self, at: 0)
            #expect(soonest)

            try await Self.passADay(c, channel: channel)
            let second = try await Self.drain(db, channel: channel, broadcast: broadcast)
            #expect(second.count == 1000)
            #expect(try await Self.waiting(c) == 500)

            try await Self.passADay(c, channel: channel)
            let third = try await Self.drain(db, channel: channel, broadcast: broadcast)
            #expect(third.count == 500)
            #expect(try await Self.waiting(c) == 0)

            let all = first + second + third
            #expect(Set(all).count == 2500, "every message went once")
            #expect(try await WorkerFixtures.statuses(c, broadcast: broadcast) == ["sent": 2500])
        }
    }

    @Test("raising daily_limit wakes the waiting messages at once")
    func limitChange() async throws {
        try await withTestConnection { db, c in
            let (channel, broadcast) = try await Self.setUp(c, limit: 100, recipients: 300)
            #expect(try await Self.drain(db, channel: channel, broadcast: broadcast).count == 100)
            #expect(try await Self.waiting(c) == 200)
            try await c.execute("UPDATE herald.channels SET settings = settings || '{\"daily_limit\": 250}' WHERE id = \(channel)")
            #expect(try await Self.drain(db, channel: channel, broadcast: broadcast).count == 150)
            #expect(try await Self.waiting(c) == 50)
            try await c.execute("UPDATE herald.channels SET settings = settings - 'daily_limit' WHERE id = \(channel)")
            #expect(try await Self.drain(db, channel: channel, broadcast: broadcast).count == 50)
        }
    }

    @Test("a second message to a recipient already counted in the window takes no new slot")
    func sameRecipient() async throws {
        try await withTestConnection { db, c in
            let (channel, broadcast) = try await Self.setUp(c, limit: 2, recipients: 2)
            #expect(try await Self.drain(db, channel: channel, broadcast: broadcast).count == 2)
            // Another broadcast on the channel to the same two people, and one new person.
            let other = try await c.query("""
                INSERT INTO herald.broadcasts (name, channel_id, template_id, status)
                SELECT 'again', \(channel), template_id, 'sending' FROM herald.broadcasts WHERE id = \(broadcast) RETURNING id
                """)[0].decode(Int64.self, at: 0)
            let newcomer = try await WorkerFixtures.contact(c, first: "New", phone: "+15550000001")
            try await c.execute("""
                WITH m AS (
                    INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address)
                    SELECT \(other), id, \(channel), phone FROM herald.contacts RETURNING id
                )
                INSERT INTO herald.jobs (message_id, broadcast_id, channel_id) SELECT id, \(other), \(channel) FROM m
                """)
            #expect(try await Self.drain(db, channel: channel, broadcast: other).count == 2)
            let waiting = try await c.query("""
                SELECT m.contact_id FROM herald.tier_waits w JOIN herald.messages m ON m.id = w.message_id
                """).map { try $0.decode(Int64.self, at: 0) }
            #expect(waiting == [newcomer])
        }
    }
}

extension ConsentTierTests {
    @Test("free-form messages (no template) are not limited by the tier")
    func freeFormNotLimited() async throws {
        try await withTestConnection { db, c in
            let (channel, broadcast) = try await Self.setUp(c, limit: 5, recipients: 20)
            try await c.execute("UPDATE herald.broadcasts SET template_id = NULL, body = 'hi' WHERE id = \(broadcast)")
            #expect(try await Self.drain(db, channel: channel, broadcast: broadcast).count == 20)
        }
    }
}
