import Foundation
import HeraldPostgres
@testable import HeraldStore
import HeraldTesting
import Testing

/// Applying receipts to messages (ReceiptStore) on a real database: forward only, idempotent,
/// out of order, before the send is recorded, and when the send's answer was lost.
@Suite("Webhooks: receipts applied to messages")
struct WebhookReceiptTests {
    let store = ReceiptStore()
    let queue = QueueStore()

    /// A sending broadcast of `count` queued messages (with jobs); returns the message ids.
    static func messages(_ c: PostgresConnection, count: Int) async throws -> (broadcast: Int64, ids: [Int64]) {
        let b = try await WorkerFixtures.sandboxBroadcast(c, to: count, kind: "whatsapp").broadcast
        let ids = try await c.query("SELECT id FROM herald.messages WHERE broadcast_id = \(b) ORDER BY id").map { try $0.decode(Int64.self, at: 0) }
        return (b, ids)
    }

    /// Runs `body` in a database of its own holding ``messages(_:count:)``, whose jobs worker `w1`
    /// has claimed (``claim(_:broadcast:owner:)``): the state in which a worker's outcomes and
    /// the provider's receipts meet.
    static func withClaimedMessages(count: Int,
                                    _ body: (TestDatabase, PostgresConnection, _ broadcast: Int64, _ ids: [Int64]) async throws -> Void) async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await messages(c, count: count)
            _ = try await WebhookReceiptTests().claim(c, broadcast: b, owner: "w1")
            try await body(db, c, b, ids)
        }
    }

    /// Claims every job of the broadcast as worker `owner` (a live lease), as the worker's claim does.
    @discardableResult
    func claim(_ c: PostgresConnection, broadcast: Int64, owner: String = "w1") async throws -> [Int64] {
        try await c.query("""
            UPDATE herald.jobs SET run_at = now() + interval '60 seconds', lease_owner = \(owner), claims = claims + 1
            WHERE broadcast_id = \(broadcast) AND run_at <= now()
            RETURNING message_id
            """).map { try $0.decode(Int64.self, at: 0) }.sorted()
    }

    /// Claims and records every message as sent with provider id `wamid.<id>`.
    func send(_ c: PostgresConnection, broadcast: Int64) async throws {
        let ids = try await claim(c, broadcast: broadcast)
        let applied = try await queue.record(ids.map { JobOutcome(messageID: $0, result: .sent(providerMessageID: "wamid.\($0)")) },
                                             owner: "w1", on: c)
        #expect(applied == ids.count)
    }

    /// Records, as worker `w1`, that the send of `id` timed out after the request went out: a
    /// retry due at `retryAt` (the message stays queued, its job unheld).
    @discardableResult
    func timedOut(_ c: PostgresConnection, _ id: Int64, retryAt: Date) async throws -> Int {
        try await queue.record([JobOutcome(messageID: id, result: .retry(at: retryAt, errorCode: nil, error: "timeout",
                                                                       failureKind: .ambiguous))], owner: "w1", on: c)
    }

    func receipt(_ pid: String, _ effect: String?, status: String? = nil, at: Date? = nil, callback: Int64? = nil,
                 code: String? = nil, error: String? = nil) -> NewReceipt {
        NewReceipt(provider: "whatsapp_cloud", providerMessageID: pid, status: status ?? effect ?? "deleted", effect: effect,
                   errorCode: code, error: error, occurredAt: at, payload: #"{"id":"\#(pid)"}"#, callbackMessageID: callback)
    }

    /// A receipt as Meta sends it for a message Herald sent: provider id `wamid.<id>`, Herald's id
    /// echoed in `biz_opaque_callback_data`.
    func receipt(message id: Int64, _ effect: String?, status: String? = nil, at: Date? = nil,
                 code: String? = nil, error: String? = nil) -> NewReceipt {
        receipt("wamid.\(id)", effect, status: status, at: at, callback: id, code: code, error: error)
    }

    /// Stores and applies receipts in one batch, as the webhooks server does: each scoped to the
    /// channel of the message it names (the server scopes each to the channels of the secret that
    /// verified it), unless the receipt says otherwise.
    @discardableResult
    func deliver(_ c: PostgresConnection, _ receipts: [NewReceipt], replays: Int = 0) async throws -> ReceiptApplication {
        var scoped: [NewReceipt] = []
        for var r in receipts {
            if r.channelID == nil, r.channelIDs.isEmpty, let id = r.callbackMessageID {
                r.channelIDs = try await c.query("SELECT channel_id FROM herald.messages WHERE id = \(id)").map { try $0.decode(Int64.self, at: 0) }
                r.channelID = r.channelIDs.first
            }
            scoped.append(r)
        }
        let ids = try await store.insert(scoped, on: c)
        #expect(ids.count == receipts.count - replays)
        return try await store.apply(ids: ids, on: c)
    }

    struct Row: Equatable {
        var status: String
        var providerMessageID: String?
        var sentAt: Date?
        var deliveredAt: Date?
        var readAt: Date?
        var failedAt: Date?
        var errorCode: String?
        var error: String?
        /// The row version: unchanged means the row was not written at all.
        var xmin: String
    }

    func row(_ c: PostgresConnection, _ id: Int64) async throws -> Row {
        let r = try await c.query("""
            SELECT status, provider_message_id, sent_at, delivered_at, read_at, failed_at, error_code, error, xmin::text
            FROM herald.messages WHERE id = \(id)
            """)[0]
        return Row(status: try r.decode(String.self, at: 0), providerMessageID: try r.decode(String?.self, at: 1),
                   sentAt: try r.decode(Date?.self, at: 2), deliveredAt: try r.decode(Date?.self, at: 3),
                   readAt: try r.decode(Date?.self, at: 4), failedAt: try r.decode(Date?.self, at: 5),
                   errorCode: try r.decode(String?.self, at: 6), error: try r.decode(String?.self, at: 7),
                   xmin: try r.decode(String.self, at: 8))
    }

    static let t1 = Date(timeIntervalSince1970: 1_750_263_773)
    static let t2 = Date(timeIntervalSince1970: 1_750_263_790)
    static let t3 = Date(timeIntervalSince1970: 1_750_263_800)

    @Test("a replayed receipt is stored once and changes nothing, not even the row version")
    func replays() async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await Self.messages(c, count: 1)
            try await send(c, broadcast: b)
            let first = try await deliver(c, [receipt(message: ids[0], "delivered", at: Self.t1)])
            #expect(first == ReceiptApplication(examined: 1, applied: 1, messagesChanged: 1, lastID: first.lastID))
            let before = try await row(c, ids[0])
            #expect(before.status == "delivered")
            #expect(before.deliveredAt == Self.t1)
            // A late `sent` is new (stored, applied, changes nothing); the replayed `delivered` is not stored again.
            let late = try await deliver(c, [receipt(message: ids[0], "delivered", at: Self.t1), receipt(message: ids[0], "sent", at: Self.t1)],
                                         replays: 1)
            #expect(late.applied == 1)
            #expect(late.messagesChanged == 0)
            for _ in 0..<3 {
                let again = try await deliver(c, [receipt(message: ids[0], "delivered", at: Self.t1), receipt(message: ids[0], "sent", at: Self.t1),
                                                  receipt(message: ids[0], "sent", at: Self.t1)], replays: 3)
                #expect(again.examined == 0)
            }
            #expect(try await row(c, ids[0]) == before)
            let stored = try await c.query("""
                SELECT count(*), count(*) FILTER (WHERE message_id = \(ids[0]) AND applied_at IS NOT NULL)
                FROM herald.delivery_receipts
                """)[0]
            #expect(try stored.decode(Int.self, at: 0) == 2)
            #expect(try stored.decode(Int.self, at: 1) == 2)
        }
    }

    @Test("out of order: read before delivered stays read; the late delivered only fills delivered_at; late sent and failed change nothing")
    func outOfOrder() async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await Self.messages(c, count: 1)
            try await send(c, broadcast: b)
            try await deliver(c, [receipt(message: ids[0], "read", at: Self.t2)])
            var r = try await row(c, ids[0])
            #expect(r.status == "read")
            #expect(r.readAt == Self.t2)
            #expect(r.deliveredAt == nil)
            try await deliver(c, [receipt(message: ids[0], "delivered", at: Self.t1)])
            r = try await row(c, ids[0])
            #expect(r.status == "read")
            #expect(r.deliveredAt == Self.t1)
            let settled = r
            try await deliver(c, [receipt(message: ids[0], "sent", at: Self.t1)])
            try await deliver(c, [receipt(message: ids[0], "failed", at: Self.t3, code: "131026", error: "Message undeliverable")])
            #expect(try await row(c, ids[0]) == settled)
        }
    }

    @Test("receipts of one batch fold in any order: the furthest step wins, read beats failed")
    func oneBatch() async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await Self.messages(c, count: 2)
            try await send(c, broadcast: b)
            try await deliver(c, [receipt(message: ids[0], "delivered", at: Self.t2), receipt(message: ids[0], "sent", at: Self.t1),
                                  receipt(message: ids[1], "failed", at: Self.t1, code: "131047", error: "Re-engagement message"),
                                  receipt(message: ids[1], "read", at: Self.t2)])
            #expect(try await row(c, ids[0]).status == "delivered")
            let second = try await row(c, ids[1])
            #expect(second.status == "read")
            #expect(second.errorCode == nil)
        }
    }

    @Test("a failed receipt ends a sent message with its error code and text")
    func failedWithCode() async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await Self.messages(c, count: 1)
            try await send(c, broadcast: b)
            try await deliver(c, [receipt(message: ids[0], "failed", at: Self.t3, code: "131026",
                                          error: "Message undeliverable: Message could not be delivered")])
            let r = try await row(c, ids[0])
            #expect(r.status == "failed")
            #expect(r.errorCode == "131026")
            #expect(r.error == "Message undeliverable: Message could not be delivered")
            #expect(r.failedAt == Self.t3)
            // Failed is final.
            try await deliver(c, [receipt(message: ids[0], "delivered", at: Self.t3), receipt(message: ids[0], "read", at: Self.t3)])
            #expect(try await row(c, ids[0]) == r)
            // The receipt keeps the provider's word and Herald's reading of it.
            let stored = try await c.query("SELECT status, effect, error_code FROM herald.delivery_receipts ORDER BY id LIMIT 1")[0]
            #expect(try stored.decode(String.self, at: 1) == "failed")
            #expect(try stored.decode(String?.self, at: 2) == "131026")
        }
    }

    @Test("a receipt before the send is recorded waits, then applies on top of the worker's sent")
    func beforeSendRecorded() async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await Self.messages(c, count: 1)
            let id = ids[0]
            try await claim(c, broadcast: b) // a worker holds it, the provider already answered
            let early = try await deliver(c, [receipt(message: id, "delivered", at: Self.t2)])
            #expect(early.applied == 0)
            #expect(early.pending == 1)
            #expect(try await row(c, id).status == "queued")
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sending": 1])
            // The worker records its outcome as usual: its guard (status = 'queued') still holds.
            let recorded = try await queue.record([JobOutcome(messageID: id, result: .sent(providerMessageID: "wamid.\(id)"))],
                                                  owner: "w1", on: c)
            #expect(recorded == 1)
            let later = try await store.applyPending(on: c)
            #expect(later.applied == 1)
            let r = try await row(c, id)
            #expect(r.status == "delivered")
            #expect(r.providerMessageID == "wamid.\(id)")
            #expect(r.deliveredAt == Self.t2)
            #expect(r.sentAt != nil)
            let report = try #require(try await ReportStore().broadcastReport(id: b, on: c))
            #expect(report.delivered == 1 && report.queued == 0 && report.sending == 0 && report.sent == 0)
        }
    }

    @Test("the send's answer was lost: Herald's id in the receipt finds the message, sets its provider id, and cancels the retry")
    func answerLost() async throws {
        try await Self.withClaimedMessages(count: 1) { db, c, b, ids in
            let id = ids[0]
            #expect(try await timedOut(c, id, retryAt: Date().addingTimeInterval(60)) == 1)
            try await deliver(c, [receipt("wamid.lost", "sent", at: Self.t1, callback: id)])
            let r = try await row(c, id)
            #expect(r.status == "sent")
            #expect(r.providerMessageID == "wamid.lost")
            #expect(r.sentAt == Self.t1)
            let jobs = try await c.query("SELECT count(*) FROM herald.jobs WHERE message_id = \(id)")[0].decode(Int.self, at: 0)
            #expect(jobs == 0, "the provider has the message: no duplicate send")
            try await deliver(c, [receipt("wamid.lost", "read", at: Self.t2, callback: id)])
            #expect(try await row(c, id).status == "read")
        }
    }

    @Test("a receipt without Herald's id, or whose id is not its message's, matches nothing; old ones are left alone")
    func unmatched() async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await Self.messages(c, count: 2)
            try await send(c, broadcast: b)
            let before = [try await row(c, ids[0]), try await row(c, ids[1])]
            let channel = try await c.query("SELECT channel_id FROM herald.messages WHERE id = \(ids[1])")[0].decode(Int64.self, at: 0)
            let result = try await deliver(c, [
                // Sent by another tool on the same number: no id of Herald's.
                receipt("SMunknown", "delivered", at: Self.t2),
                // Herald's id echoed with another provider id, for a message sent once: not this message.
                receipt("wamid.other", "read", at: Self.t2, callback: ids[0]),
                // The right pair, but signed by another channel's credentials.
                NewReceipt(provider: "whatsapp_cloud", providerMessageID: "wamid.\(ids[1])", status: "read", effect: "read",
                           errorCode: nil, error: nil, occurredAt: Self.t2, payload: "{}", callbackMessageID: ids[1],
                           channelID: channel + 1000),
            ])
            #expect(result.examined == 3)
            #expect(result.applied == 0)
            #expect(try await row(c, ids[0]) == before[0])
            #expect(try await row(c, ids[1]) == before[1])
            let matched = try await c.query("SELECT count(*) FROM herald.delivery_receipts WHERE message_id IS NOT NULL")[0].decode(Int.self, at: 0)
            #expect(matched == 0)
            // Outside the window, nothing is looked at.
            try await c.execute("UPDATE herald.delivery_receipts SET received_at = now() - interval '2 hours'")
            #expect(try await store.applyPending(window: .seconds(3600), on: c).examined == 0)
        }
    }

    @Test("after several tries, a receipt under an earlier try's provider id still applies (that try was accepted too)")
    func earlierTry() async throws {
        try await Self.withClaimedMessages(count: 1) { db, c, b, ids in
            let id = ids[0]
            // The first try timed out after the request went out; the second was accepted.
            #expect(try await timedOut(c, id, retryAt: Date()) == 1)
            #expect(try await claim(c, broadcast: b) == [id])
            try await queue.record([JobOutcome(messageID: id, result: .sent(providerMessageID: "wamid.second"))], owner: "w1", on: c)
            let applied = try await deliver(c, [receipt("wamid.first", "delivered", at: Self.t2, callback: id)])
            #expect(applied.applied == 1)
            let r = try await row(c, id)
            #expect(r.status == "delivered")
            #expect(r.providerMessageID == "wamid.second")
        }
    }

    @Test("receipts that change nothing (Twilio queued, Meta deleted) are stored and marked applied")
    func noEffect() async throws {
        try await withTestConnection { db, c in
            let (b, ids) = try await Self.messages(c, count: 1)
            try await send(c, broadcast: b)
            let before = try await row(c, ids[0])
            let result = try await deliver(c, [receipt(message: ids[0], nil, status: "deleted")])
            #expect(result.applied == 1 && result.messagesChanged == 0)
            #expect(try await row(c, ids[0]) == before)
        }
    }

    @Test("an inbound WhatsApp message moves the sender's last_inbound_at forward only")
    func inbound() async throws {
        try await withTestConnection { db, c in
            let a = try await WorkerFixtures.contact(c, first: "A", phone: "+16505551234", lastInbound: false)
            let other = try await WorkerFixtures.contact(c, first: "B", phone: "+16505550000", lastInbound: false)
            #expect(try await store.recordInbound([("+16505551234", Self.t2), ("+19999999999", Self.t2)], on: c) == 1)
            #expect(try await store.recordInbound([("+16505551234", Self.t1)], on: c) == 0)
            let rows = try await c.query("SELECT id, last_inbound_at FROM herald.contacts ORDER BY id")
            #expect(try rows[0].decode(Int64.self, at: 0) == a)
            #expect(try rows[0].decode(Date?.self, at: 1) == Self.t2)
            #expect(try rows[1].decode(Int64.self, at: 0) == other)
            #expect(try rows[1].decode(Date?.self, at: 1) == nil)
        }
    }
}
