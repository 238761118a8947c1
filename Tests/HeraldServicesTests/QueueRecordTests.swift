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
        try await withTestDatabase { db in
            let c = try await db.connect()
            let (broadcast, ids) = try await WebhookReceiptTests.messages(c, count: 4)
            try await receipts.claim(c, broadcast: broadcast, owner: "w1")
            // The lease on the first two expired and w2 took them.
            try await c.execute("UPDATE herald.jobs SET lease_owner = 'w2' WHERE message_id = ANY(\(Array(ids[0..<2]))::bigint[])")

            let retryAt = Date().addingTimeInterval(120)
            let applied = try await queue.record([
                JobOutcome(messageID: ids[0], result: .sent(providerMessageID: "wamid.a")),
                JobOutcome(messageID: ids[1], result: .retry(at: retryAt, errorCode: "500", error: "boom", failureKind: "not_sent")),
                JobOutcome(messageID: ids[2], result: .sent(providerMessageID: "wamid.c")),
                JobOutcome(messageID: ids[3], result: .retry(at: retryAt, errorCode: "500", error: "boom", failureKind: "not_sent")),
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

    @Test("a hand-back makes the job due now without an owner and leaves its message as it was")
    func handBack() async throws {
        try await withTestDatabase { db in
            let c = try await db.connect()
            let (broadcast, ids) = try await WebhookReceiptTests.messages(c, count: 3)
            try await receipts.claim(c, broadcast: broadcast, owner: "w1")
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
        try await withTestDatabase { db in
            let c = try await db.connect()
            let (broadcast, ids) = try await WebhookReceiptTests.messages(c, count: 1)
            try await receipts.claim(c, broadcast: broadcast, owner: "w1")
            // w2 re-claims the job in an open transaction, so w1's record has to wait for the lock.
            let other = try await db.connect()
            try await other.simpleQuery("BEGIN")
            try await other.execute("UPDATE herald.jobs SET lease_owner = 'w2' WHERE message_id = \(ids[0])")
            let recording = Task {
                try await queue.record([JobOutcome(messageID: ids[0], result: .sent(providerMessageID: "wamid.x"))],
                                       owner: "w1", on: c)
            }
            try await Task.sleep(for: .milliseconds(300))
            try await other.simpleQuery("COMMIT")
            #expect(try await recording.value == 0)
            #expect(try await jobs(c, ids)[ids[0]] == .some("w2"))
            let status = try await c.query("SELECT status FROM herald.messages WHERE id = \(ids[0])")[0].decode(String.self, at: 0)
            #expect(status == "queued")
        }
    }
}
