import Foundation
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Logging
import Testing

/// Old history leaves `herald.messages` (migration 0010, ``HistoryPruner``).
@Suite("History prune: finished broadcasts past the retention lose their messages, not their report")
struct HistoryPruneTests {
    static let logger = Logger(label: "test.prune")

    /// A broadcast in `status` that finished `daysAgo` days ago, with `sent` sent and `failed`
    /// failed messages (written as the worker would, through the counting triggers).
    static func finishedBroadcast(_ c: PostgresConnection, channel: Int64, contacts: [Int64], status: String = "completed",
                                  daysAgo: Int, failed: Int = 0) async throws -> Int64 {
        let id = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "hi")
        try await c.execute("DELETE FROM herald.jobs WHERE broadcast_id = \(id)")
        try await c.execute("""
            UPDATE herald.messages SET status = CASE WHEN contact_id = ANY(\(Array(contacts.prefix(failed)))::bigint[])
                                                     THEN 'failed' ELSE 'sent' END
            WHERE broadcast_id = \(id)
            """)
        try await c.execute("""
            UPDATE herald.broadcasts SET status = \(status), finished_at = now() - make_interval(days => \(daysAgo))
            WHERE id = \(id)
            """)
        return id
    }

    static func report(_ c: PostgresConnection, _ id: Int64) async throws -> (sent: Int, failed: Int, recipients: Int) {
        let r = try await c.query("SELECT sent, failed, recipients FROM herald.broadcast_report WHERE broadcast_id = \(id)")[0]
        return (try r.decode(Int.self, at: 0), try r.decode(Int.self, at: 1), try r.decode(Int.self, at: 2))
    }

    static func messages(_ c: PostgresConnection, _ id: Int64) async throws -> Int {
        try await c.query("SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id)")[0].decode(Int.self, at: 0)
    }

    @Test("an old finished broadcast loses its messages in batches and keeps its counts; recent ones keep everything")
    func prunesOldKeepsRecent() async throws {
        try await withTestConnection { db, c in
            let channel = try await WorkerFixtures.sandboxChannel(c)
            let contacts = try await WorkerFixtures.contacts(c, count: 25)
            let old = try await Self.finishedBroadcast(c, channel: channel, contacts: contacts, daysAgo: 40, failed: 5)
            let recent = try await Self.finishedBroadcast(c, channel: channel, contacts: contacts, daysAgo: 10)
            let before = try await Self.report(c, old)

            let pruner = HistoryPruner(retention: HistoryRetention(retention: .seconds(30 * 86_400), batchSize: 10))
            #expect(try await pruner.step(on: c, logger: Self.logger) == 10)
            #expect(try await Self.messages(c, old) == 15)
            #expect(try await pruner.step(on: c, logger: Self.logger) == 10)
            #expect(try await pruner.step(on: c, logger: Self.logger) == 5)
            #expect(try await pruner.step(on: c, logger: Self.logger) == 0)

            #expect(try await Self.messages(c, old) == 0)
            #expect(try await Self.messages(c, recent) == 25)
            let after = try await Self.report(c, old)
            #expect(after == before)
            #expect(after == (sent: 20, failed: 5, recipients: 25))
            let marked = try await c.query("SELECT history_pruned_at IS NOT NULL FROM herald.broadcasts WHERE id = \(old)")[0]
            #expect(try marked.decode(Bool.self, at: 0))
        }
    }

    @Test("a broadcast still sending, or cancelled with a job left, is never pruned; no retention prunes nothing")
    func leavesLiveWork() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 5) { db, c, channel, contacts, sending in
            try await c.execute("UPDATE herald.broadcasts SET created_at = now() - interval '90 days' WHERE id = \(sending)")
            let cancelled = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "hi")
            try await c.execute("""
                UPDATE herald.broadcasts SET status = 'cancelled', finished_at = now() - interval '90 days' WHERE id = \(cancelled)
                """)
            let old = try await Self.finishedBroadcast(c, channel: channel, contacts: contacts, daysAgo: 90)

            #expect(try await HistoryPruner(retention: nil).step(on: c, logger: Self.logger) == 0)
            #expect(try await Self.messages(c, old) == 5)

            let pruner = HistoryPruner(retention: HistoryRetention(retention: .seconds(86_400)))
            #expect(try await pruner.step(on: c, logger: Self.logger) == 5)
            #expect(try await pruner.step(on: c, logger: Self.logger) == 0)
            #expect(try await Self.messages(c, sending) == 5)
            #expect(try await Self.messages(c, cancelled) == 5)
        }
    }

    @Test("retention comes from HERALD_HISTORY_RETENTION_DAYS; a bad value names the variable")
    func environment() throws {
        #expect(try HistoryRetention.fromEnvironment([:]) == nil)
        #expect(try HistoryRetention.fromEnvironment(["HERALD_HISTORY_RETENTION_DAYS": "30", "HERALD_HISTORY_PRUNE_BATCH": "200"])
                == HistoryRetention(retention: .seconds(30 * 86_400), batchSize: 200))
        #expect(throws: HistoryRetentionError.self) { try HistoryRetention.fromEnvironment(["HERALD_HISTORY_RETENTION_DAYS": "a week"]) }
    }
}
