import Foundation
import HeraldCore
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Testing

/// The contract's rule for receipts, pinned where it lives: in the SQL of ``ReceiptStore/apply(ids:on:)``.
/// A status only moves forward along queued → sent → delivered → read (steps may be skipped);
/// a failed receipt ends a message that is not yet read; read, failed, skipped and cancelled
/// are final. A queued message under a live lease ("sending" in `message_status`) takes
/// receipts as a queued one does.
@Suite("Receipt fold: every status against every receipt, in the database")
struct ReceiptFoldTests {
    /// (stored status, under a live lease, receipt's effect, status afterwards)
    static let table: [(String, Bool, ReceiptStatus, String)] = [
        ("queued", false, .sent, "sent"), ("queued", false, .delivered, "delivered"),
        ("queued", false, .read, "read"), ("queued", false, .failed, "failed"),
        ("queued", true, .sent, "sent"), ("queued", true, .delivered, "delivered"),
        ("queued", true, .read, "read"), ("queued", true, .failed, "failed"),
        ("sent", false, .sent, "sent"), ("sent", false, .delivered, "delivered"),
        ("sent", false, .read, "read"), ("sent", false, .failed, "failed"),
        ("delivered", false, .sent, "delivered"), ("delivered", false, .delivered, "delivered"),
        ("delivered", false, .read, "read"), ("delivered", false, .failed, "failed"),
        ("read", false, .sent, "read"), ("read", false, .delivered, "read"),
        ("read", false, .read, "read"), ("read", false, .failed, "read"),
        ("failed", false, .sent, "failed"), ("failed", false, .delivered, "failed"),
        ("failed", false, .read, "failed"), ("failed", false, .failed, "failed"),
        ("skipped", false, .sent, "skipped"), ("skipped", false, .delivered, "skipped"),
        ("skipped", false, .read, "skipped"), ("skipped", false, .failed, "skipped"),
        ("cancelled", false, .sent, "cancelled"), ("cancelled", false, .delivered, "cancelled"),
        ("cancelled", false, .read, "cancelled"), ("cancelled", false, .failed, "cancelled"),
    ]

    @Test("the table covers every status of message_status against every receipt")
    func tableIsComplete() {
        let statuses = Set(Self.table.map { $0.1 ? "sending" : $0.0 })
        #expect(statuses == Set(MessageStatus.allCases.map(\.rawValue)))
        for status in statuses {
            #expect(Set(Self.table.filter { ($0.1 ? "sending" : $0.0) == status }.map(\.2)) == Set(ReceiptStatus.allCases))
        }
    }

    @Test("each receipt moves each status as the contract says (after the lease, for a message being sent); a replay moves nothing")
    func fold() async throws {
        try await withTestConnection { db, c in
            let (_, ids) = try await WebhookReceiptTests.messages(c, count: Self.table.count)
            for (id, row) in zip(ids, Self.table) {
                let (stored, leased, _, _) = row
                if stored == "queued" {
                    if leased {
                        try await c.execute("""
                            UPDATE herald.jobs SET run_at = now() + interval '60 seconds', lease_owner = 'w1' WHERE message_id = \(id)
                            """)
                    }
                } else {
                    try await c.execute("DELETE FROM herald.jobs WHERE message_id = \(id)")
                    try await c.execute("""
                        UPDATE herald.messages SET status = \(stored), provider_message_id = 'wamid.' || id WHERE id = \(id)
                        """)
                }
            }
            let view = try await c.query("""
                SELECT status FROM herald.message_status WHERE message_id = ANY(\(ids)::bigint[]) ORDER BY message_id
                """).map { try $0.decode(String.self, at: 0) }
            #expect(view == Self.table.map { $0.1 ? "sending" : $0.0 }, "the starting states as message_status shows them")

            let helper = WebhookReceiptTests()
            let receipts = zip(ids, Self.table).map { id, row in
                helper.receipt(message: id, row.2.rawValue, at: Date(), code: row.2 == .failed ? "131026" : nil,
                               error: row.2 == .failed ? "undeliverable" : nil)
            }
            try await helper.deliver(c, receipts)
            // A receipt for a message under a live lease waits: the worker's outcome comes first.
            let early = try await Self.statuses(c, ids)
            for (index, row) in Self.table.enumerated() {
                let expected = row.1 ? "queued" : row.3
                #expect(early[index] == expected, "\(row.1 ? "sending" : row.0) + \(row.2) gave \(early[index]), not \(expected)")
            }
            // The lease ends (the worker handed the jobs back): the waiting receipts apply.
            try await c.execute("UPDATE herald.jobs SET lease_owner = NULL, run_at = now() WHERE lease_owner = 'w1'")
            _ = try await ReceiptStore().applyPending(on: c)
            let after = try await Self.statuses(c, ids)
            for (index, row) in Self.table.enumerated() {
                #expect(after[index] == row.3, "\(row.1 ? "sending" : row.0) + \(row.2) gave \(after[index]), not \(row.3)")
            }

            // The same receipts delivered again are stored once and move nothing.
            try await helper.deliver(c, receipts, replays: receipts.count)
            _ = try await ReceiptStore().applyPending(on: c)
            #expect(try await Self.statuses(c, ids) == after)
        }
    }

    static func statuses(_ c: PostgresConnection, _ ids: [Int64]) async throws -> [String] {
        try await c.query("SELECT status FROM herald.messages WHERE id = ANY(\(ids)::bigint[]) ORDER BY id")
            .map { try $0.decode(String.self, at: 0) }
    }
}
