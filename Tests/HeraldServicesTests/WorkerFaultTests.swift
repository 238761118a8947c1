import Foundation
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

@Suite("Worker faults: one bad broadcast is quarantined; outcomes outlive a database outage")
struct WorkerFaultTests {
    @Test("a broadcast with template_params [null], and one with a missing secret, end failed with the reason; the rest is sent")
    func quarantine() async throws {
        try await ProviderDouble.with { double in
            try await withTestConnection { db, c in
                let sandbox = try await WorkerFixtures.sandboxChannel(c)
                let secretless = try await WorkerFixtures.whatsAppChannel(c, double: double, name: "nosecret")
                try await c.execute("""
                    UPDATE herald.channels SET settings = jsonb_set(settings, '{access_token_env}', '"HERALD_TEST_UNSET_TOKEN"')
                    WHERE id = \(secretless)
                    """)
                let contacts = try await WorkerFixtures.contacts(c, count: 20)
                let good = try await WorkerFixtures.sendingBroadcast(c, channel: sandbox, contacts: contacts, body: "hi")
                let poison = try await WorkerFixtures.sendingBroadcast(c, channel: sandbox, contacts: contacts, body: "hi")
                // A row written before migration 0012's write-time checks: drop the check that would
                // refuse it today, as the database of an upgraded installation may hold such rows.
                try await c.execute("ALTER TABLE herald.broadcasts DROP CONSTRAINT broadcasts_template_params_strings")
                try await c.execute("UPDATE herald.broadcasts SET template_params = '[null]' WHERE id = \(poison)")
                // ... and not an edit waiting for the scheduler (the edit trigger stamped it).
                try await c.execute("UPDATE herald.broadcasts SET definition_changed_at = NULL WHERE id = \(poison)")
                let unprepared = try await WorkerFixtures.sendingBroadcast(c, channel: secretless, contacts: contacts, template: ("promo", ["x"]))
                let failedBoth: @Sendable () async throws -> Bool = {
                    let c = try await db.connect()
                    defer { Task { await c.close() } }
                    return try await c.query("""
                        SELECT count(*) FROM herald.broadcasts WHERE id IN (\(poison), \(unprepared)) AND status = 'failed'
                        """)[0].decode(Int.self, at: 0) == 2
                }
                let goodDone = WorkerFixtures.allDone(db, broadcast: good)
                let reached = try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), timeout: .seconds(10)) {
                    let sent = try await goodDone()
                    let failed = try await failedBoth()
                    return sent && failed
                }
                #expect(reached)
                #expect(try await WorkerFixtures.statuses(c, broadcast: good) == ["sent": 20])
                let poisonError = try await c.query("SELECT error FROM herald.broadcasts WHERE id = \(poison)")[0].decode(String?.self, at: 0)
                #expect(poisonError?.contains("template_params[0] is null") == true, "\(poisonError ?? "no error")")
                let secretError = try await c.query("SELECT error FROM herald.broadcasts WHERE id = \(unprepared)")[0].decode(String?.self, at: 0)
                #expect(secretError?.contains("HERALD_TEST_UNSET_TOKEN") == true, "\(secretError ?? "no error")")
                #expect(double.requestCount == 0)
            }
        }
    }

    @Test("a contact deleted after expansion is not messaged: skipped with contact_deleted, the rest sent")
    func deletedContact() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double, db, c, channel in
            let contacts = try await WorkerFixtures.contacts(c, count: 5)
            // A template: no 24-hour window to hold the message back for another reason.
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, template: ("promo", ["x"]))
            // Deleted with its opt-outs and memberships (an erasure request); its message stays.
            try await c.execute("DELETE FROM herald.contacts WHERE id = \(contacts[2])")
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 4, "skipped": 1])
            let reason = try await c.query("SELECT skip_reason FROM herald.messages WHERE broadcast_id = \(b) AND contact_id = \(contacts[2])")[0]
            #expect(try reason.decode(String?.self, at: 0) == "contact_deleted")
            #expect(double.requestCount == 4)
        }
    }

    @Test("after a PostgreSQL restart, a lapsed lease held by another worker is not claimable for the restart grace")
    func restartGrace() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 2) { db, c, channel, contacts, b in
            let held = try await c.query("""
                UPDATE herald.jobs SET lease_owner = 'a-worker-cut-off-by-the-restart', run_at = now() - interval '1 minute'
                WHERE message_id = (SELECT min(message_id) FROM herald.jobs WHERE broadcast_id = \(b)) RETURNING message_id
                """)[0].decode(Int64.self, at: 0)
            let store = QueueStore()
            // The cluster started less than a day ago: a day's grace keeps the lapsed lease.
            let first = try await store.claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 10,
                                              lease: .seconds(30), restartGrace: .seconds(86_400), owner: "w", attributeKeys: [])
            #expect(first.jobs.count == 1)
            #expect(!first.jobs.map(\.messageID).contains(held))
            let second = try await store.claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 10,
                                               lease: .seconds(30), restartGrace: .zero, owner: "w", attributeKeys: [])
            #expect(second.jobs.map(\.messageID) == [held])
        }
    }

    @Test("outcomes of sends made while the database refuses writes are kept past the lease and written later; nothing goes twice")
    func outcomesOutliveOutage() async throws {
        try await WorkerFixtures.withPromo(to: 20, latency: .milliseconds(1500)) { s async throws in
            let (double, db, c, b) = (s.double, s.db, s.c, s.broadcast)
            // A request timeout of 4 s, well above the double's 1.5 s: with 2 s, answers delayed by a
            // loaded machine timed out and were retried as ambiguous, which the double counts as a second send.
            var config = WorkerFixtures.configuration(db, lease: .seconds(5), requestTimeout: .seconds(4))
            // No restart here, so the restart grace must not be what keeps the jobs from being
            // claimed again (and the test's server is young enough for a grace to apply).
            config.restartGrace = .zero
            let allDone = WorkerFixtures.allDone(db, broadcast: b)
            // While the table is away, "is it done?" cannot be answered: not yet.
            async let done = WorkerFixtures.runWorker(config, timeout: .seconds(40)) { (try? await allDone()) ?? false }
            #expect(await double.waitForRequests(20, timeout: .seconds(10)))
            // The queue table is unreachable while the answers arrive and for longer than the lease.
            try await c.execute("ALTER TABLE herald.jobs RENAME TO jobs_unreachable")
            try await Task.sleep(for: .seconds(7))
            try await c.execute("ALTER TABLE herald.jobs_unreachable RENAME TO jobs")
            #expect(try await done)
            #expect(double.received(.whatsApp).count == 20, "a message went out again after the outage")
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 20])
            #expect(try await WorkerFixtures.recordedAttempts(c, broadcast: b) == 20)
        }
    }
}
