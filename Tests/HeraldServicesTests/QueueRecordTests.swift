import Foundation
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Testing

/// QueueStore.record on a real database: outcomes apply only to jobs their worker still holds.
@Suite("Queue: recording outcomes under a lease")
struct QueueRecordTests {
    let queue = QueueStore()
    let receipts = WebhookReceiptTests()

    func jobs(_ c: PostgresConnection, _ ids: [Int64]) async throws -> [Int64: String?] {
        var owners: [Int64: String?] = [:]
        for r in try await c.query("SELECT message_id, lease_owner FROM herald.jobs WHERE message_id = ANY(\(ids)::bigint[])") {
            owners[try r.decode(Int64.self, at: 0)] = try r.decode(String?.self, at: 1)
        }
        return owners
    }

    @Test("a job re-claimed by another worker is neither finished nor retried by the first")
    func lostLease() async throws {
        try await WebhookReceiptTests.withClaimedMessages(count: 4) { db, c, broadcast, ids in
            // The lease on the first two expired and w2 took them.
            try await c.execute("UPDATE herald.jobs SET lease_owner = 'w2' WHERE message_id = ANY(\(Array(ids[0..<2]))::bigint[])")

            let retryAt = Date().addingTimeInterval(120)
            let applied = try await queue.record([
                JobOutcome(messageID: ids[0], result: .sent(providerMessageID: "wamid.a")),
                JobOutcome(messageID: ids[1], result: .retry(at: retryAt, errorCode: "500", error: "boom", failureKind: .notSent)),
                JobOutcome(messageID: ids[2], result: .sent(providerMessageID: "wamid.c")),
                JobOutcome(messageID: ids[3], result: .retry(at: retryAt, errorCode: "500", error: "boom", failureKind: .notSent)),
            ], owner: "w1", on: c)

            #expect(applied == 2)
            let owners = try await jobs(c, ids)
            #expect(owners[ids[0]] == .some("w2"))  // still w2's, untouched
            #expect(owners[ids[1]] == .some("w2"))
            #expect(owners[ids[2]] == nil)          // finished: left the queue
            #expect(owners[ids[3]] == .some(nil))   // back in the queue, no owner
            let statuses = try await c.query("SELECT id, status, attempts, provider_message_id FROM herald.messages WHERE id = ANY(\(ids)::bigint[]) ORDER BY id")
            #expect(try statuses.map { try $0.decode(String.self, at: 1) } == ["queued", "queued", "sent", "queued"])
            #expect(try statuses.map { try $0.decode(Int.self, at: 2) } == [0, 0, 1, 1])
            #expect(try statuses.map { try $0.decode(String?.self, at: 3) } == [nil, nil, "wamid.c", nil])
        }
    }

    @Test("a batch of sent outcomes only (its own statement) records them as a mixed batch does, the lease checked the same")
    func sentOnlyBatchAsMixed() async throws {
        try await WebhookReceiptTests.withClaimedMessages(count: 7) { db, c, broadcast, ids in
            let sentOnly = Array(ids[0..<3]), mixed = Array(ids[3..<6]), skipped = ids[6]
            // An earlier retry left an error and an attempt on the first of each; the third of
            // each was re-claimed by w2.
            try await c.execute("""
                UPDATE herald.messages SET attempts = 1, error_code = '500', error = 'boom', failure_kind = 'not_sent'
                WHERE id = ANY(\([sentOnly[0], mixed[0]])::bigint[])
                """)
            try await c.execute("UPDATE herald.jobs SET lease_owner = 'w2' WHERE message_id = ANY(\([sentOnly[2], mixed[2]])::bigint[])")
            func sent(_ ids: [Int64]) -> [JobOutcome] {
                ids.enumerated().map { i, id in
                    JobOutcome(messageID: id, result: .sent(providerMessageID: "wamid.\(id)"), segments: i == 1 ? 2 : nil)
                }
            }
            let batch = sent(sentOnly), mixedBatch = sent(mixed) + [JobOutcome(messageID: skipped, result: .skipped(reason: .optedOut))]
            #expect(QueueStore.recordSentStatement(batch, owner: "w1") != nil, "all sent: the statement for sent outcomes")
            #expect(QueueStore.recordSentStatement(mixedBatch, owner: "w1") == nil, "one outcome not sent: the general statement")

            #expect(try await queue.record(batch, owner: "w1", on: c) == 2)
            #expect(try await queue.record(mixedBatch, owner: "w1", on: c) == 3)

            func state(_ id: Int64) async throws -> [String?] {
                let row = try await c.query("""
                    SELECT status, attempts::text, error_code, error, failure_kind, skip_reason, segments::text,
                           (sent_at IS NOT NULL)::text, (failed_at IS NOT NULL)::text, part_provider_message_ids::text,
                           replace(provider_message_id, id::text, '<id>'),
                           (SELECT lease_owner FROM herald.jobs WHERE message_id = \(id))
                    FROM herald.messages WHERE id = \(id)
                    """)[0]
                return try (0..<12).map { try row.decode(String?.self, at: $0) }
            }
            for (a, b) in zip(sentOnly, mixed) {
                #expect(try await state(a) == state(b))
            }
            #expect(try await state(sentOnly[0]) == ["sent", "2", "500", "boom", "not_sent", nil, nil, "true", "false", nil, "wamid.<id>", nil])
            #expect(try await state(sentOnly[1])[6] == "2", "segments recorded")
            #expect(try await state(sentOnly[2]) == ["queued", "0", nil, nil, nil, nil, nil, "false", "false", nil, nil, "w2"],
                    "w2's job: untouched")
            // The broadcast's counts (kept by a trigger on every statement that updates messages).
            var counts: [String: Int] = [:]
            for r in try await c.query("""
                SELECT status, sum(n)::int FROM herald.broadcast_counts WHERE broadcast_id = \(broadcast) GROUP BY status HAVING sum(n) <> 0
                """) {
                counts[try r.decode(String.self, at: 0)] = try r.decode(Int.self, at: 1)
            }
            #expect(counts == ["queued": 2, "sent": 4, "skipped": 1])
        }
    }

    @Test("a hand-back makes the job due now without an owner and leaves its message as it was")
    func handBack() async throws {
        try await WebhookReceiptTests.withClaimedMessages(count: 3) { db, c, broadcast, ids in
            try await c.execute("UPDATE herald.jobs SET lease_owner = 'w2' WHERE message_id = \(ids[2])")

            let applied = try await queue.record([
                JobOutcome(messageID: ids[0], result: .handBack),
                JobOutcome(messageID: ids[1], result: .sent(providerMessageID: "wamid.b")),
                JobOutcome(messageID: ids[2], result: .handBack),  // w2 holds it now: not ours to hand back
            ], owner: "w1", on: c)

            #expect(applied == 2)
            let rows = try await c.query("""
                SELECT message_id, lease_owner, run_at <= now() FROM herald.jobs
                WHERE message_id = ANY(\(ids)::bigint[]) ORDER BY message_id
                """)
            #expect(try rows.map { try $0.decode(Int64.self, at: 0) } == [ids[0], ids[2]])
            #expect(try rows.map { try $0.decode(String?.self, at: 1) } == [nil, "w2"])
            #expect(try rows[0].decode(Bool.self, at: 2), "handed back: due at once")
            let messages = try await c.query("SELECT status, attempts, error FROM herald.messages WHERE id = ANY(\(ids)::bigint[]) ORDER BY id")
            #expect(try messages.map { try $0.decode(String.self, at: 0) } == ["queued", "sent", "queued"])
            #expect(try messages.map { try $0.decode(Int.self, at: 1) } == [0, 1, 0], "a hand-back is no attempt")
            #expect(try messages.map { try $0.decode(String?.self, at: 2) } == [nil, nil, nil])
        }
    }

    @Test("a re-claim that commits while the record waits for its row lock wins")
    func concurrentReclaim() async throws {
        try await WebhookReceiptTests.withClaimedMessages(count: 1) { db, c, broadcast, ids in
            // w2 re-claims the job in an open transaction, so w1's record has to wait for the lock.
            let other = try await db.connect()
            try await other.simpleQuery("BEGIN")
            try await other.execute("UPDATE herald.jobs SET lease_owner = 'w2' WHERE message_id = \(ids[0])")
            let recording = Task {
                try await queue.record([JobOutcome(messageID: ids[0], result: .sent(providerMessageID: "wamid.x"))],
                                       owner: "w1", on: c)
            }
            // Commit only once the record waits for the row lock `other` holds (asked from a
            // third session: inside a transaction pg_stat_activity is a snapshot).
            let watcher = try await db.connect()
            #expect(try await eventually {
                try await watcher.query("""
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
                    """)[0].decode(Int.self, at: 0) > 0
            })
            try await other.simpleQuery("COMMIT")
            #expect(try await recording.value == 0)
            #expect(try await jobs(c, ids)[ids[0]] == .some("w2"))
            let status = try await c.query("SELECT status FROM herald.messages WHERE id = \(ids[0])")[0].decode(String.self, at: 0)
            #expect(status == "queued")
        }
    }
}

/// Migration 0007: recording an outcome and applying a receipt rewrite a message without a new
/// entry in any of its indexes (HOT updates). Counted by PostgreSQL's own per-transaction
/// statistics, so the figures are exact, not sampled.
@Suite("Queue: message updates are HOT")
struct HOTUpdateTests {
    /// Updates and HOT updates of herald.messages counted by this backend and not yet reported
    /// (its statistics are flushed between transactions, never inside one).
    static func updates(_ c: PostgresConnection) async throws -> (all: Int, hot: Int) {
        let r = try await c.query("""
            SELECT pg_stat_get_xact_tuples_updated('herald.messages'::regclass),
                   pg_stat_get_xact_tuples_hot_updated('herald.messages'::regclass)
            """)[0]
        return (try r.decode(Int.self, at: 0), try r.decode(Int.self, at: 1))
    }

    /// Runs `body` in a transaction; returns how many updates of herald.messages it made, and how many were HOT.
    static func counting(_ c: PostgresConnection, _ body: @escaping @Sendable (PostgresConnection) async throws -> Void) async throws -> (all: Int, hot: Int) {
        try await c.transaction { c in
            let before = try await updates(c)
            try await body(c)
            let after = try await updates(c)
            return (after.all - before.all, after.hot - before.hot)
        }
    }

    /// Waits up to 30 seconds until PostgreSQL may prune the row versions `connection`'s last
    /// transaction made dead, and returns the sessions that still hold that back, described
    /// (none once all let go). Two kinds do: a transaction of *any* database of the cluster that
    /// has an id and began before, because every snapshot taken while it runs (this session's
    /// own too) keeps everything since visible; and a session of this database whose snapshot is
    /// older (say an autovacuum worker's ANALYZE of the fresh rows).
    static func sessionsHoldingBackPruning(after connection: PostgresConnection) async throws -> [String] {
        // The first transaction id not assigned yet: every transaction before it may hold back.
        let next = try await connection.query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0].decode(String.self, at: 0)
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let rows = try await connection.query("""
                SELECT coalesce(datname, '') || ' ' || backend_type || ', ' || coalesce(state, '') || ': ' || left(coalesce(query, ''), 80)
                FROM pg_stat_activity
                WHERE pid <> pg_backend_pid()
                  AND (age(backend_xid) > age(\(next)::text::xid)
                       OR (datname = current_database() AND age(backend_xmin) > age(\(next)::text::xid)))
                """)
            let holders = try rows.map { try $0.decode(String.self, at: 0) }
            if holders.isEmpty || ContinuousClock.now >= deadline { return holders }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A provider id as long as Meta's (58 characters).
    static func wamid(_ id: Int64) -> String { "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0" + String(format: "%012d", id) }

    @Test("a batch of sent outcomes updates every message without touching an index; most delivered receipts too")
    func outcomesAndReceiptsAreHOT() async throws {
        try await withTestConnection { db, c in
            let receipts = WebhookReceiptTests()
            let (broadcast, ids) = try await WebhookReceiptTests.messages(c, count: 300)
            try await receipts.claim(c, broadcast: broadcast, owner: "w1")
            // A whole batch in one transaction, as the worker records it.
            let sent = try await Self.counting(c) { c in
                let applied = try await QueueStore().record(ids.map { JobOutcome(messageID: $0, result: .sent(providerMessageID: Self.wamid($0))) },
                                                            owner: "w1", on: c)
                #expect(applied == ids.count)
            }
            #expect(sent.all == ids.count)
            #expect(sent.hot == ids.count, "every outcome a HOT update (no index on a column the worker sets, room on the page)")

            // A receipt's new row version fits on the page only once PostgreSQL has pruned the
            // version the sent outcome replaced, and it may not while an older transaction runs
            // anywhere in the cluster (in the parallel test run: other tests). Then 23 of 300
            // receipts are HOT, not ~190.
            let holders = try await Self.sessionsHoldingBackPruning(after: c)
            #expect(holders.isEmpty, "sessions still holding back pruning: \(holders)")

            let delivered = try await Self.counting(c) { c in
                // Scoped to the channel whose secret verified them, as the webhooks server scopes them.
                let channel = try await c.query("SELECT channel_id FROM herald.messages WHERE id = \(ids[0])")[0].decode(Int64.self, at: 0)
                let stored = try await ReceiptStore().insert(ids.map { id -> NewReceipt in
                    var r = receipts.receipt(Self.wamid(id), "delivered", at: Date(), callback: id)
                    r.channelID = channel
                    r.channelIDs = [channel]
                    return r
                }, on: c)
                let applied = try await ReceiptStore().apply(ids: stored, on: c)
                #expect(applied.messagesChanged == ids.count)
            }
            #expect(delivered.all == ids.count)
            // The rows grew when sent (provider id, sent_at), so a page holds fewer new versions
            // the second time: about two thirds of the receipts fit beside their row (190 of 300
            // here); the rest move to another page, which then has room for the next receipts.
            #expect(delivered.hot * 2 >= ids.count, "\(delivered.hot) of \(ids.count) HOT")
        }
    }
}
