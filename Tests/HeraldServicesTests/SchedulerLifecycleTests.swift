import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

@Suite("Scheduler: life cycle")
struct SchedulerLifecycleTests {
    typealias F = SchedulerFixtures

    /// `count` contacts with valid phones, all in one new group; returns the group's id.
    static func bigGroup(_ c: PostgresConnection, _ count: Int) async throws -> Int64 {
        let g = try await c.query("INSERT INTO herald.groups (name) VALUES ('big') RETURNING id")[0].decode(Int64.self, at: 0)
        try await c.execute("""
            WITH new AS (
                INSERT INTO herald.contacts (first_name, phone)
                SELECT 'C' || i, '+23480' || lpad(i::text, 8, '0') FROM generate_series(1, \(count)) i
                RETURNING id)
            INSERT INTO herald.group_members (group_id, contact_id) SELECT \(g), id FROM new
            """)
        return g
    }

    @Test("without streaming, cancel racing with start: the cancel wins, nothing was claimable, messages end cancelled")
    func cancelDuringExpansion() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let g = try await Self.bigGroup(c, 20_000)
            let id = try await F.broadcast(c, channel: channel, groups: [g])
            try await F.withScheduler(db, chunk: 100, claimable: .afterWholeExpansion) {
                try await F.waitUntil("expansion is under way") {
                    try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE id = \(id) AND expansion_cursor IS NOT NULL") == 1
                }
                // The admin tool cancels; its write is guarded the way the admin tool would guard it.
                let cancelled = try await c.execute("UPDATE herald.broadcasts SET status = 'cancelled' WHERE id = \(id) AND status = 'scheduled'")
                #expect(cancelled == 1)
                try await F.waitUntil("its queued messages end cancelled") {
                    let jobs = try await F.jobCount(c, id)
                    let queued = try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'queued'")
                    return jobs == 0 && queued == 0
                }
            }
            let row = try await c.query("SELECT status, started_at IS NULL, expanded_at IS NULL FROM herald.broadcasts WHERE id = \(id)")[0]
            #expect(try row.decode(String.self, at: 0) == "cancelled")
            #expect(try row.decode(Bool.self, at: 1))
            #expect(try row.decode(Bool.self, at: 2))
            let messages = try await F.messageCount(c, id)
            #expect(messages > 0 && messages < 20_000)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status <> 'cancelled'") == 0)
        }
    }

    @Test("a sending broadcast with no job left completes; one with jobs, a paused one, and an unexpanded one do not")
    func completes() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            let id = try await F.broadcast(c, channel: channel, contacts: [contact])
            let paused = try await F.broadcast(c, channel: channel, status: "draft", contacts: [contact])
            let unexpanded = try await F.broadcast(c, channel: channel, status: "draft", contacts: [contact])
            try await c.execute("UPDATE herald.broadcasts SET status = 'paused', expanded_at = now() WHERE id = \(paused)")
            try await c.execute("UPDATE herald.broadcasts SET status = 'sending' WHERE id = \(unexpanded)")
            try await F.withScheduler(db) {
                try await F.waitUntil("it starts") { try await F.status(c, id) == "sending" }
                // A broadcast with nothing left to send completes in the scheduler's next
                // maintenance pass: the signal that a pass went over the one still sending.
                let done = try await F.broadcast(c, channel: channel, status: "draft", contacts: [contact])
                try await c.execute("UPDATE herald.broadcasts SET status = 'sending', expanded_at = now() WHERE id = \(done)")
                try await F.waitUntil("a pass completes the finished one") { try await F.status(c, done) == "completed" }
                #expect(try await F.status(c, id) == "sending")
                // A worker finishes the one message.
                try await c.execute("UPDATE herald.messages SET status = 'sent', sent_at = now() WHERE broadcast_id = \(id)")
                try await c.execute("DELETE FROM herald.jobs WHERE broadcast_id = \(id)")
                try await F.waitUntil("it completes", timeout: .seconds(30)) { try await F.status(c, id) == "completed" }
            }
            #expect(try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE id = \(id) AND finished_at >= started_at") == 1)
            #expect(try await F.status(c, paused) == "paused")
            #expect(try await F.status(c, unexpanded) == "sending")
        }
    }

    @Test("a broadcast whose whole audience is skipped starts and completes at once")
    func allSkipped() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let contact = try await F.contact(c, phone: "not a phone")
            let id = try await F.broadcast(c, channel: channel, contacts: [contact])
            try await F.withScheduler(db) {
                try await F.waitUntil("it completes", timeout: .seconds(30)) { try await F.status(c, id) == "completed" }
            }
            #expect(try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'skipped'") == 1)
        }
    }

    @Test("a cancelled broadcast's unsent messages end cancelled; one under a live lease is left to its worker")
    func cancelledSending() async throws {
        try await F.withChannel(contacts: 4) { db, c, channel, contacts in
            let cancelled = try await F.whileSending(db, c, channel: channel, contacts: contacts) { id in
                // A worker sent one, holds one under a live lease, and one lease has expired.
                let ids = try await c.query("SELECT id FROM herald.messages WHERE broadcast_id = \(id) ORDER BY id").map { try $0.decode(Int64.self, at: 0) }
                try await c.execute("UPDATE herald.messages SET status = 'sent' WHERE id = \(ids[0])")
                try await c.execute("DELETE FROM herald.jobs WHERE message_id = \(ids[0])")
                try await c.execute("UPDATE herald.jobs SET lease_owner = 'w1', run_at = now() + interval '1 minute', claims = 1 WHERE message_id = \(ids[1])")
                try await c.execute("UPDATE herald.jobs SET lease_owner = 'w2', run_at = now() - interval '1 second', claims = 1 WHERE message_id = \(ids[2])")
                try await c.execute("UPDATE herald.broadcasts SET status = 'cancelled' WHERE id = \(id)")
                try await F.waitUntil("unleased jobs are gone", timeout: .seconds(30)) { try await F.jobCount(c, id) == 1 }
                let m = try await c.query("SELECT id, status FROM herald.messages WHERE broadcast_id = \(id) ORDER BY id")
                    .map { try $0.decode(String.self, at: 1) }
                #expect(m == ["sent", "queued", "cancelled", "cancelled"])
                #expect(try await F.count(c, "SELECT count(*) FROM herald.jobs WHERE message_id = \(ids[1])") == 1)
            }
            #expect(try await F.status(c, cancelled) == "cancelled")
        }
    }

    @Test("a leader whose connection breaks reconnects, leads again and goes on")
    func reconnects() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            try await F.withScheduler(db) {
                let first = try await F.broadcast(c, channel: channel, contacts: [contact])
                try await F.waitUntil("the first starts") { try await F.status(c, first) == "sending" }
                let killed = try await F.count(c, """
                    SELECT count(pg_terminate_backend(pid)) FROM pg_locks
                    WHERE locktype = 'advisory' AND granted AND objid = (\(Leadership.schedulerLockKey) & 4294967295)::oid
                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    """)
                #expect(killed == 1)
                let second = try await F.broadcast(c, channel: channel, contacts: [contact])
                try await F.waitUntil("the second starts", timeout: .seconds(30)) { try await F.status(c, second) == "sending" }
            }
        }
    }

    @Test("the leader folds broadcast_report's counter deltas together")
    func compactsCounters() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            var contacts: [Int64] = []
            for i in 0..<3 { contacts.append(try await F.contact(c, phone: "+234803123456\(i)")) }
            let id = try await F.broadcast(c, channel: channel, status: "draft", contacts: contacts)
            for contact in contacts { // three statements: three delta rows for (broadcast, queued)
                try await c.execute("""
                    INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address)
                    VALUES (\(id), \(contact), \(channel), '+2348030000000')
                    """)
            }
            #expect(try await F.count(c, "SELECT count(*) FROM herald.broadcast_counts WHERE broadcast_id = \(id)") == 3)
            try await F.withScheduler(db) {
                try await F.waitUntil("the deltas are folded", timeout: .seconds(30)) {
                    try await F.count(c, "SELECT count(*) FROM herald.broadcast_counts WHERE broadcast_id = \(id)") == 1
                }
            }
            #expect(try await F.count(c, "SELECT queued FROM herald.broadcast_report WHERE broadcast_id = \(id)") == 3)
        }
    }
}
