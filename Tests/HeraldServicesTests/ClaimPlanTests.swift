import Foundation
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Testing

/// A claim must cost the same whatever the size of the queue: with thousands of channels, each
/// claiming about once a second, a claim that reads the whole `jobs` table bounds the worker.
@Suite("Queue: a claim reads jobs by index, never the whole table")
struct ClaimPlanTests {
    @Test("claims of a broadcast among thousands of queued jobs and channels scan no table of jobs, messages, contacts or channels")
    func claimUsesIndexes() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 3000, channel: "indexed") { db, c, channel, contacts, b in
            _ = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "hi again")
            // A platform's other channels: a claim reads only its own (a hash join over all of
            // them also ran take_tokens in the table's order rather than the requests').
            try await c.execute("""
                INSERT INTO herald.channels (name, kind, provider, rate_per_second, burst)
                SELECT 'other' || i, 'sms', 'sandbox', 20, 20 FROM generate_series(1, 2000) i
                """)
            try await c.execute("ANALYZE herald.channels")
            try await c.execute("ANALYZE herald.jobs")
            try await c.execute("ANALYZE herald.messages")
            try await c.execute("ANALYZE herald.contacts")
            let before = try await Self.sequentialScans(c)
            let store = QueueStore()
            var claimed = 0
            for _ in 0..<10 {  // past the 5 custom plans: the generic plan of the prepared statement counts too
                let claim = try await store.claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 20,
                                                  scanLimit: 200, lease: .seconds(30), owner: "w1", attributeKeys: [])
                claimed += claim.jobs.count
            }
            #expect(claimed == 200)
            let after = try await Self.sequentialScans(c)
            #expect(after == before, "sequential scans during the claims: before \(before), after \(after)")
            // The statement is planned once per connection: past its first custom plans, PostgreSQL
            // keeps the generic one (planning it again cost about 0.5 ms a claim).
            let plans = try await c.query("""
                SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%claim_requests%'
                """)
            #expect(plans.count == 1)
            if let row = plans.first {
                let generic = try row.decode(Int.self, at: 0), custom = try row.decode(Int.self, at: 1)
                #expect(generic >= 5 && custom <= 5, "generic plans \(generic), custom plans \(custom)")
            }
        }
    }

    /// Sequential scans so far of jobs, messages, contacts and channels, with this session's own counts
    /// flushed first (PostgreSQL 15 publishes a session's statistics when it goes idle, at most
    /// once a second unless asked).
    static func sequentialScans(_ c: PostgresConnection) async throws -> [String: Int] {
        try await c.execute("SELECT pg_stat_force_next_flush()")
        var scans: [String: Int] = [:]
        for row in try await c.query("""
            SELECT relname, seq_scan FROM pg_stat_user_tables
            WHERE schemaname = 'herald' AND relname IN ('jobs', 'messages', 'contacts', 'channels')
            """) {
            scans[try row.decode(String.self, at: 0)] = try row.decode(Int.self, at: 1)
        }
        return scans
    }
}
