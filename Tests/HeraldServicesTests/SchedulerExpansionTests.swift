import HeraldPostgres
import HeraldServices
@testable import HeraldStore
import HeraldTesting
import Testing

@Suite("Scheduler: audience expansion")
struct SchedulerExpansionTests {
    typealias F = SchedulerFixtures

    @Test("overlapping groups and picked contacts give one message and one job per distinct contact")
    func dedupe() async throws {
        try await F.withChannel(contacts: 6) { db, c, channel, ids in
            let a = try await F.group(c, "a", members: [ids[0], ids[1], ids[2]])
            let b = try await F.group(c, "b", members: [ids[1], ids[2], ids[3]])
            // ids[5] is in no group and not picked.
            let id = try await F.broadcast(c, channel: channel, groups: [a, b], contacts: [ids[3], ids[4], ids[0]])
            // A chunk of 2 contact ids makes the overlap span several chunks.
            try await F.withScheduler(db, chunk: 2) {
                try await F.waitUntil("it is expanded") { try await F.expanded(c, id) }
            }
            let messages = try await F.messages(c, id)
            #expect(Set(messages.keys) == Set(ids[0...4]))
            #expect(messages.values.allSatisfy { $0.0 == "queued" && $0.1 == nil && $0.2 == "+2348031234567" })
            #expect(try await F.jobCount(c, id) == 5)
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.jobs j JOIN herald.messages m ON m.id = j.message_id
                WHERE j.broadcast_id = \(id) AND m.broadcast_id = \(id) AND j.channel_id = \(channel)
                """) == 5)
            let row = try await c.query("SELECT started_at IS NOT NULL, expanded_at IS NOT NULL FROM herald.broadcasts WHERE id = \(id)")[0]
            #expect(try row.decode(Bool.self, at: 0))
            #expect(try row.decode(Bool.self, at: 1))
        }
    }

    @Test("SMS: opted out, invalid or missing phone are skipped; opted out wins over invalid")
    func smsSkips() async throws {
        try await F.withChannelAndContact { db, c, channel, ok in
            let optedOut = try await F.contact(c)
            let optedOutAndInvalid = try await F.contact(c, phone: "0803 123 4567")
            let invalid = try await F.contact(c, phone: "08031234567")
            let tooShort = try await F.contact(c, phone: "+1234567")
            let noPhone = try await F.contact(c, phone: nil)
            let emailOptOut = try await F.contact(c)
            try await c.execute("""
                INSERT INTO herald.opt_outs (contact_id, channel_kind)
                VALUES (\(optedOut), 'sms'), (\(optedOutAndInvalid), 'sms'), (\(emailOptOut), 'email'), (\(optedOut), 'sms')
                """)
            let g = try await F.group(c, "all", members: [ok, optedOut, optedOutAndInvalid, invalid, tooShort, noPhone, emailOptOut])
            let id = try await F.broadcast(c, channel: channel, groups: [g])
            try await F.withScheduler(db) {
                try await F.waitUntil("it is expanded") { try await F.expanded(c, id) }
            }
            let m = try await F.messages(c, id)
            #expect(m.count == 7)
            #expect(m[ok]?.0 == "queued")
            #expect(m[emailOptOut]?.0 == "queued")
            #expect(m[optedOut]?.0 == "skipped" && m[optedOut]?.1 == "opted_out")
            #expect(m[optedOutAndInvalid]?.1 == "opted_out")
            #expect(m[invalid]?.0 == "skipped" && m[invalid]?.1 == "invalid_address" && m[invalid]?.2 == "08031234567")
            #expect(m[tooShort]?.1 == "invalid_address")
            #expect(m[noPhone]?.1 == "invalid_address" && m[noPhone]?.2 == nil)
            #expect(try await F.jobCount(c, id) == 2)
        }
    }

    @Test("email: the address is the email; bad emails are skipped; an SMS opt-out does not skip an email")
    func emailSkips() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c, name: "mail", kind: "email")
            let ok = try await F.contact(c, phone: nil, email: "ada@example.com")
            let smsOptOut = try await F.contact(c, email: "bo@example.co.uk")
            let emailOptOut = try await F.contact(c, email: "cy@example.com")
            let noDomainDot = try await F.contact(c, email: "dee@localhost")
            let twoAts = try await F.contact(c, email: "e@f@example.com")
            let noEmail = try await F.contact(c, email: nil)
            try await c.execute("INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (\(smsOptOut), 'sms'), (\(emailOptOut), 'email')")
            let id = try await F.broadcast(c, channel: channel, subject: "Hi", contacts: [ok, smsOptOut, emailOptOut, noDomainDot, twoAts, noEmail])
            try await F.withScheduler(db) {
                try await F.waitUntil("it is expanded") { try await F.expanded(c, id) }
            }
            let m = try await F.messages(c, id)
            #expect(m[ok]?.0 == "queued" && m[ok]?.2 == "ada@example.com")
            #expect(m[smsOptOut]?.0 == "queued" && m[smsOptOut]?.2 == "bo@example.co.uk")
            #expect(m[emailOptOut]?.1 == "opted_out")
            #expect(m[noDomainDot]?.1 == "invalid_address")
            #expect(m[twoAts]?.1 == "invalid_address")
            #expect(m[noEmail]?.1 == "invalid_address")
            #expect(try await F.jobCount(c, id) == 2)
        }
    }

    @Test("WhatsApp without a template skips contacts outside the 24-hour window; with a template it does not")
    func whatsAppWindow() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c, name: "wa", kind: "whatsapp")
            let recent = try await F.contact(c, lastInboundAgo: "1 hour")
            let old = try await F.contact(c, lastInboundAgo: "25 hours")
            let never = try await F.contact(c)
            let badPhoneOld = try await F.contact(c, phone: "+0123", lastInboundAgo: "3 days")
            let waOptOut = try await F.contact(c, lastInboundAgo: "1 hour")
            try await c.execute("INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (\(waOptOut), 'whatsapp')")
            let audience = [recent, old, never, badPhoneOld, waOptOut]
            let template = try await c.query("""
                INSERT INTO herald.templates (channel_id, name, language, body, status)
                VALUES (\(channel), 'promo', 'en', 'Hi {{1}}', 'approved') RETURNING id
                """)[0].decode(Int64.self, at: 0)
            let free = try await F.broadcast(c, channel: channel, contacts: audience)
            let templated = try await F.broadcast(c, channel: channel, body: nil, template: template,
                                                  templateParams: #"["{{ first_name }}"]"#, contacts: audience)
            try await F.withScheduler(db) {
                try await F.waitUntil("both are expanded") {
                    let a = try await F.expanded(c, free), b = try await F.expanded(c, templated)
                    return a && b
                }
            }
            let f = try await F.messages(c, free)
            #expect(f[recent]?.0 == "queued")
            #expect(f[old]?.1 == "outside_whatsapp_window")
            #expect(f[never]?.1 == "outside_whatsapp_window")
            #expect(f[badPhoneOld]?.1 == "invalid_address")
            #expect(f[waOptOut]?.1 == "opted_out")
            let t = try await F.messages(c, templated)
            #expect(t[recent]?.0 == "queued")
            #expect(t[old]?.0 == "queued")
            #expect(t[never]?.0 == "queued")
            #expect(t[badPhoneOld]?.1 == "invalid_address")
            #expect(t[waOptOut]?.1 == "opted_out")
            #expect(try await F.jobCount(c, free) == 1)
            #expect(try await F.jobCount(c, templated) == 3)
        }
    }

    @Test("sparse contact ids cost no empty chunks")
    func sparseIDs() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let ids = try await c.query("""
                INSERT INTO herald.contacts (id, phone) OVERRIDING SYSTEM VALUE
                VALUES (5, '+2348031234567'), (1000000000, '+2348031234567'), (4000000000000, '+2348031234567')
                RETURNING id
                """).map { try $0.decode(Int64.self, at: 0) }
            let g = try await F.group(c, "sparse", members: ids)
            let id = try await F.broadcast(c, channel: channel, groups: [g])
            try await F.withScheduler(db, chunk: 10) {
                // 0.5 s alone; the default 20 s leaves room for the parallel test pass on 2 cores. A
                // chunk per 10 ids would be 400 billion chunks, so any bound this size still tells.
                try await F.waitUntil("it is expanded") { try await F.expanded(c, id) }
            }
            #expect(try await F.jobCount(c, id) == 3)
        }
    }

    @Test("a large chunk of a broadcast newer than the statistics takes time linear in its size")
    func largeChunkWithStaleStatistics() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let g = try await SchedulerLifecycleTests.bigGroup(c, 30_000)
            try await c.execute("ANALYZE")  // as autovacuum last saw it: no broadcast, no broadcast_groups row
            let id = try await F.broadcast(c, channel: channel, groups: [g])
            let rules = SchedulerStore.Eligibility(kind: .sms, hasTemplate: false)
            let clock = ContinuousClock()
            let started = clock.now
            let result = try await SchedulerStore(c).expandChunk(of: id, channelID: channel, eligibility: rules,
                                                                 previousCursor: nil, low: 1, high: Int64.max)
            // About a second; joining the chunk's messages back to its candidates in a nested
            // loop (the planner's choice with these statistics) took minutes.
            #expect(clock.now - started < .seconds(30))
            #expect(result == .init(advanced: true, messages: 30_000, jobs: 30_000))
        }
    }

    @Test("a chunk replayed with a stale cursor, or for a cancelled broadcast, inserts nothing")
    func chunkGuards() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let a = try await F.contact(c)
            let b = try await F.contact(c)
            let id = try await F.broadcast(c, channel: channel, contacts: [a, b])
            let store = SchedulerStore(c)
            let rules = SchedulerStore.Eligibility(kind: .sms, hasTemplate: false)
            let first = try await store.expandChunk(of: id, channelID: channel, eligibility: rules, previousCursor: nil, low: a, high: a)
            #expect(first == .init(advanced: true, messages: 1, jobs: 1))
            let replay = try await store.expandChunk(of: id, channelID: channel, eligibility: rules, previousCursor: nil, low: a, high: b)
            #expect(replay == .init(advanced: false, messages: 0, jobs: 0))
            try await c.execute("UPDATE herald.broadcasts SET status = 'cancelled' WHERE id = \(id)")
            let cancelled = try await store.expandChunk(of: id, channelID: channel, eligibility: rules, previousCursor: a, low: b, high: b)
            #expect(cancelled == .init(advanced: false, messages: 0, jobs: 0))
            #expect(try await store.finishExpansion(id) == false)
            #expect(try await F.messageCount(c, id) == 1)
        }
    }
}
