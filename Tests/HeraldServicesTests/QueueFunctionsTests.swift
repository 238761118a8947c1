import HeraldPostgres
import HeraldTesting
import Testing

/// herald.due_messages() and herald.oldest_due_age_seconds() (migration 0010), what KEDA scales on.
@Suite("Queue functions for autoscalers: due messages and the oldest one's age")
struct QueueFunctionsTests {
    @Test("due counts only claimable jobs of sending broadcasts, per channel or all; the age is the oldest's")
    func dueAndAge() async throws {
        try await withTestConnection { db, c in
            let sms = try await WorkerFixtures.sandboxChannel(c, name: "sms")
            let mail = try await WorkerFixtures.sandboxChannel(c, name: "mail", kind: "email")
            let contacts = try await WorkerFixtures.contacts(c, count: 6)
            let sending = try await WorkerFixtures.sendingBroadcast(c, channel: sms, contacts: contacts, body: "hi")
            let paused = try await WorkerFixtures.sendingBroadcast(c, channel: mail, contacts: contacts, body: "hi", subject: "s")
            try await c.execute("UPDATE herald.broadcasts SET status = 'paused' WHERE id = \(paused)")
            // Two jobs leased by a worker, one backing off: not due. The rest waited 90 s.
            try await c.execute("""
                UPDATE herald.jobs SET run_at = now() + interval '30 seconds', lease_owner = 'w'
                WHERE message_id IN (SELECT message_id FROM herald.jobs WHERE broadcast_id = \(sending) ORDER BY message_id LIMIT 2)
                """)
            try await c.execute("""
                UPDATE herald.jobs SET run_at = now() + interval '5 minutes'
                WHERE message_id = (SELECT max(message_id) FROM herald.jobs WHERE broadcast_id = \(sending))
                """)
            try await c.execute("UPDATE herald.jobs SET run_at = now() - interval '90 seconds' WHERE broadcast_id = \(sending) AND run_at <= now()")

            let row = try await c.query("""
                SELECT herald.due_messages(), herald.due_messages('sms'), herald.due_messages('mail'),
                       herald.oldest_due_age_seconds(), herald.oldest_due_age_seconds('mail')
                """)[0]
            #expect(try row.decode(Int.self, at: 0) == 3)
            #expect(try row.decode(Int.self, at: 1) == 3)
            #expect(try row.decode(Int.self, at: 2) == 0)
            let age = try row.decode(Double.self, at: 3)
            #expect(age >= 90 && age < 120)
            #expect(try row.decode(Double.self, at: 4) == 0)
        }
    }
}
