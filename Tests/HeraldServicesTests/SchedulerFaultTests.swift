import Foundation
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

/// Issue 16: one bad broadcast row never breaks the scheduler's loop or its leadership, and edits
/// of running broadcasts are validated before they are used.
@Suite("Scheduler: faults and edits")
struct SchedulerFaultTests {
    typealias F = SchedulerFixtures

    /// The backend pid holding the scheduler's advisory lock, nil when nobody leads.
    static func leaderPID(_ c: PostgresConnection) async throws -> Int32? {
        try await c.query("""
            SELECT pid FROM pg_locks
            WHERE locktype = 'advisory' AND granted
              AND ((classid::bigint << 32) | objid::bigint) = \(Leadership.schedulerLockKey)
            """).first?.decode(Int32.self, at: 0)
    }

    /// ``SchedulerFixtures/withChannelAndContact(_:)`` in a database whose `broadcasts` table
    /// lacks the check `constraint` (migration 0008's), so the test can write a row that a
    /// database older than the check may still hold.
    static func withoutCheck(_ constraint: String,
                             _ body: (TestDatabase, PostgresConnection, _ channel: Int64, _ contact: Int64) async throws -> Void) async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            try await c.simpleQuery("ALTER TABLE herald.broadcasts DROP CONSTRAINT \(constraint)")
            try await body(db, c, channel, contact)
        }
    }

    @Test("send_at = 'infinity' (a row older than 0008's check): that broadcast fails with the reason, the others start, leadership holds")
    func infiniteSendAt() async throws {
        try await Self.withoutCheck("broadcasts_send_at_finite") { db, c, channel, contact in
            let never = try await F.broadcast(c, channel: channel, status: "draft", contacts: [contact])
            try await c.execute("UPDATE herald.broadcasts SET send_at = 'infinity', status = 'scheduled' WHERE id = \(never)")
            try await F.withScheduler(db) {
                try await F.waitUntil("the infinite one fails") { try await F.status(c, never) == "failed" }
                #expect(try await F.error(c, never) == SchedulerStore.infiniteSendAt)
                let now = try await F.broadcast(c, channel: channel, contacts: [contact])
                try await F.waitUntil("a new broadcast starts") { try await F.status(c, now) == "sending" }
                // A loop that failed on the row would lose its session every pass and start nothing:
                // the new broadcast starting after the bad row was failed is the signal that it goes on.
                #expect(try await Self.leaderPID(c) != nil)
            }
        }
    }

    @Test("template_params = '[null]' in a row older than 0008's check: that broadcast ends failed with the reason, the others start")
    func oldBadParams() async throws {
        try await Self.withoutCheck("broadcasts_template_params_strings") { db, c, channel, contact in
            let bad = try await F.broadcast(c, channel: channel, templateParams: "[null]", contacts: [contact])
            try await c.simpleQuery("ALTER TABLE herald.broadcasts ADD CONSTRAINT broadcasts_template_params_strings CHECK (template_params IS NULL OR herald.is_string_array(template_params)) NOT VALID")
            let good = try await F.broadcast(c, channel: channel, contacts: [contact])
            try await F.withScheduler(db) {
                try await F.waitUntil("the bad one fails") { try await F.status(c, bad) == "failed" }
                try await F.waitUntil("the good one starts") { try await F.status(c, good) == "sending" }
                let error = try await F.error(c, bad) ?? ""
                #expect(error.contains("broadcasts_template_params_strings"), "\(error)")
                #expect(error.contains("[null]") || error.contains("template_params"), "\(error)")
            }
        }
    }

    @Test("an edit that breaks a sending broadcast ends it failed with the reason; its unsent messages end failed")
    func badEdit() async throws {
        try await F.withChannel(contacts: 3) { db, c, channel, contacts in
            try await F.whileSending(db, c, channel: channel, contacts: contacts) { id in
                try await c.execute("UPDATE herald.broadcasts SET body = 'Hi {{ shoe_size }}' WHERE id = \(id)")
                try await F.waitUntil("the edit is rejected") { try await F.status(c, id) == "failed" }
                let error = try await F.error(c, id)
                #expect(error?.hasPrefix("edit rejected: ") == true, "\(error ?? "nil")")
                #expect(error?.contains("shoe_size") == true)
                try await F.waitUntil("its unsent messages end failed") { try await F.jobCount(c, id) == 0 }
                #expect(try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'failed' AND error LIKE 'broadcast failed: edit rejected%'") == 3)
            }
        }
    }

    @Test("a valid edit of a paused broadcast is accepted: the stamp is cleared, the status stays the admin tool's")
    func goodEdit() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            try await F.whileSending(db, c, channel: channel, contacts: [contact]) { id in
                try await c.execute("UPDATE herald.broadcasts SET status = 'paused' WHERE id = \(id)")
                try await c.execute("UPDATE herald.broadcasts SET body = 'Hello {{ first_name }}' WHERE id = \(id)")
                try await F.waitUntil("the edit is accepted") {
                    try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE id = \(id) AND definition_changed_at IS NULL") == 1
                }
                #expect(try await F.status(c, id) == "paused")
                #expect(try await F.jobCount(c, id) == 1)
            }
        }
    }
}
