import Foundation
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Synchronization
import Testing

/// Shared by the tasks of the concurrent test.
final class MixState: Sendable {
    let stop = Atomic<Bool>(false)
    let checks = Atomic<Int>(0)
    let mismatches = Mutex<[String]>([])
}

/// The report views on a real database: counters kept by triggers agree with the messages,
/// also while sends and receipts change them concurrently.
@Suite("Reports: broadcast_report, channel_report and herald report")
struct ReportTests {
    /// One statement, so one snapshot: the report's counts next to count(*) over message_status.
    static func compare(_ c: PostgresConnection, broadcast: Int64) async throws -> (report: [Int], counted: [Int]) {
        let r = try await c.query("""
            SELECT r.recipients, r.queued, r.sending, r.sent, r.delivered, r.read, r.failed, r.skipped, r.cancelled,
                   s.recipients, s.queued, s.sending, s.sent, s.delivered, s.read, s.failed, s.skipped, s.cancelled
            FROM herald.broadcast_report r
            CROSS JOIN LATERAL (
                SELECT count(*) AS recipients,
                       count(*) FILTER (WHERE status = 'queued') AS queued,
                       count(*) FILTER (WHERE status = 'sending') AS sending,
                       count(*) FILTER (WHERE status = 'sent') AS sent,
                       count(*) FILTER (WHERE status = 'delivered') AS delivered,
                       count(*) FILTER (WHERE status = 'read') AS read,
                       count(*) FILTER (WHERE status = 'failed') AS failed,
                       count(*) FILTER (WHERE status = 'skipped') AS skipped,
                       count(*) FILTER (WHERE status = 'cancelled') AS cancelled
                FROM herald.message_status WHERE broadcast_id = r.broadcast_id
            ) s
            WHERE r.broadcast_id = \(broadcast)
            """)[0]
        let values = try (0..<18).map { try r.decode(Int.self, at: $0) }
        return (Array(values[0..<9]), Array(values[9..<18]))
    }

    @Test("the counters follow every kind of write: expansion, outcomes, receipts, cancellation, deletes, compaction")
    func countersFollowWrites() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 50, body: "x") { db, c, channel, contacts, b in
            var (report, counted) = try await Self.compare(c, broadcast: b)
            #expect(report == counted)
            #expect(report[0] == 50 && report[1] == 50)
            try await c.execute("UPDATE herald.jobs SET lease_owner = 'w', run_at = now() + interval '1 minute' WHERE message_id IN (SELECT id FROM herald.messages WHERE broadcast_id = \(b) ORDER BY id LIMIT 10)")
            (report, counted) = try await Self.compare(c, broadcast: b)
            #expect(report == counted)
            #expect(report[1] == 40 && report[2] == 10)
            try await c.execute("WITH d AS (DELETE FROM herald.jobs WHERE lease_owner = 'w' RETURNING message_id) UPDATE herald.messages SET status = 'sent', sent_at = now() WHERE id IN (SELECT message_id FROM d)")
            try await c.execute("UPDATE herald.messages SET attempts = attempts + 1 WHERE broadcast_id = \(b)")
            try await c.execute("WITH d AS (DELETE FROM herald.jobs WHERE message_id IN (SELECT id FROM herald.messages WHERE broadcast_id = \(b) AND status = 'queued' ORDER BY id LIMIT 5) RETURNING message_id) UPDATE herald.messages SET status = 'cancelled' WHERE id IN (SELECT message_id FROM d)")
            try await c.execute("DELETE FROM herald.messages WHERE id = (SELECT max(id) FROM herald.messages WHERE broadcast_id = \(b) AND status = 'sent')")
            (report, counted) = try await Self.compare(c, broadcast: b)
            #expect(report == counted)
            #expect(report == [49, 35, 0, 9, 0, 0, 0, 0, 5])
            let folded = try await ReportStore().compactCounts(on: c)
            #expect(folded > 3)
            let rows = try await c.query("SELECT count(*) FROM herald.broadcast_counts WHERE broadcast_id = \(b)")[0].decode(Int.self, at: 0)
            #expect(rows == 3)
            (report, _) = try await Self.compare(c, broadcast: b)
            #expect(report == counted)
            #expect(try await ReportStore().compactCounts(on: c) == 0, "nothing left to fold")
        }
    }

    @Test("report counts equal the messages' statuses under a concurrent mix of sends and receipts")
    func concurrentMix() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 3000, kind: "whatsapp", body: "x") { db, setup, channel, contacts, b in
            let state = MixState()

            try await withThrowingTaskGroup(of: Void.self) { group in
                // Workers: claim a batch under a lease, record a mix of outcomes in one statement.
                for w in 0..<3 {
                    group.addTask {
                        let c = try await db.connect()
                        let owner = "worker-\(w)"
                        while true {
                            let ids = try await c.query("""
                                UPDATE herald.jobs j SET run_at = now() + interval '30 seconds', lease_owner = \(owner), claims = j.claims + 1
                                FROM (SELECT message_id FROM herald.jobs WHERE broadcast_id = \(b) AND run_at <= now()
                                      ORDER BY run_at LIMIT 50 FOR UPDATE SKIP LOCKED) p
                                WHERE j.message_id = p.message_id RETURNING j.message_id, j.claims
                                """).map { (try $0.decode(Int64.self, at: 0), try $0.decode(Int.self, at: 1)) }
                            if ids.isEmpty {
                                if state.stop.load(ordering: .acquiring) { break }
                                let left = try await c.query("SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(b)")[0].decode(Int.self, at: 0)
                                if left == 0 { break }
                                try await Task.sleep(for: .milliseconds(5))
                                continue
                            }
                            let outcomes = ids.map { id, claims -> JobOutcome in
                                switch claims < 3 ? id % 20 : 4 {
                                case 0: JobOutcome(messageID: id, result: .failed(errorCode: "131026", error: "undeliverable", failureKind: nil))
                                case 1: JobOutcome(messageID: id, result: .skipped(reason: .optedOut))
                                case 2, 3: JobOutcome(messageID: id, result: .retry(at: Date().addingTimeInterval(0.05), errorCode: nil,
                                                                                   error: "timeout", failureKind: .ambiguous))
                                default: JobOutcome(messageID: id, result: .sent(providerMessageID: "p\(id)"))
                                }
                            }
                            // A provider answer sometimes arrives before the outcome is recorded.
                            try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                            _ = try await QueueStore().record(outcomes, owner: owner, on: c)
                        }
                        await c.close()
                    }
                }
                // Providers: receipts for random messages, in any order, some before the send is recorded,
                // each with Herald's id (as providers echo it), some under a provider id the worker never
                // recorded (an answer lost), replays included.
                for p in 0..<2 {
                    group.addTask {
                        let c = try await db.connect()
                        let store = ReceiptStore()
                        var rng = SystemRandomNumberGenerator()
                        while !state.stop.load(ordering: .acquiring) {
                            let picked = try await c.query("""
                                SELECT id FROM herald.messages WHERE broadcast_id = \(b) ORDER BY random() LIMIT 40
                                """).map { try $0.decode(Int64.self, at: 0) }
                            let receipts = picked.map { id -> NewReceipt in
                                let effect = ["sent", "delivered", "delivered", "read", "read", "failed"].randomElement(using: &rng)!
                                let byCallback = id % 7 == 0
                                return NewReceipt(provider: "whatsapp_cloud", providerMessageID: byCallback ? "lost\(id)" : "p\(id)",
                                                  status: effect, effect: effect, errorCode: effect == "failed" ? "131026" : nil,
                                                  occurredAt: Date(), payload: "{}", callbackMessageID: id, channelID: channel)
                            }
                            let ids = try await store.insert(receipts, on: c)
                            _ = try await store.apply(ids: ids, on: c)
                            if p == 0 { _ = try await store.applyPending(on: c) }
                        }
                        await c.close()
                    }
                }
                // Maintenance folds the counters meanwhile.
                group.addTask {
                    let c = try await db.connect()
                    while !state.stop.load(ordering: .acquiring) {
                        try await ReportStore().compactCounts(on: c)
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    await c.close()
                }
                // Readers: every report equals the counts in the same snapshot.
                group.addTask {
                    let c = try await db.connect()
                    while !state.stop.load(ordering: .acquiring) {
                        let (report, counted) = try await Self.compare(c, broadcast: b)
                        if report != counted { state.mismatches.withLock { $0.append("report \(report) != counted \(counted)") } }
                        state.checks.add(1, ordering: .relaxed)
                    }
                    await c.close()
                }
                // Stop when the queue is empty (the workers are done), then let the rest settle.
                let c = try await db.connect()
                let deadline = ContinuousClock.now + .seconds(90)
                while ContinuousClock.now < deadline {
                    let left = try await c.query("SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(b)")[0].decode(Int.self, at: 0)
                    if left == 0 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                // Readers and maintenance go on a little over the settled counts too (more
                // comparisons, not a wait for a result); the final check below applies what is pending.
                try await Task.sleep(for: .milliseconds(300))
                state.stop.store(true, ordering: .releasing)
                try await group.waitForAll()
                await c.close()
            }
            #expect(state.mismatches.withLock { $0 }.isEmpty, "\(state.mismatches.withLock { $0.prefix(3) })")
            #expect(state.checks.load(ordering: .relaxed) > 10)
            _ = try await ReceiptStore().applyPending(on: setup)
            let (report, counted) = try await Self.compare(setup, broadcast: b)
            #expect(report == counted)
            #expect(report[0] == 3000)
            #expect(report[1] == 0 && report[2] == 0, "every job was finished")
            #expect(report[4] + report[5] > 0, "receipts moved messages forward")
            // Every message still queued has a job and vice versa: the invariant `sending` rests on.
            let orphans = try await setup.query("""
                SELECT (SELECT count(*) FROM herald.messages m WHERE m.status = 'queued' AND NOT EXISTS (SELECT 1 FROM herald.jobs j WHERE j.message_id = m.id)),
                       (SELECT count(*) FROM herald.jobs j JOIN herald.messages m ON m.id = j.message_id WHERE m.status <> 'queued')
                """)[0]
            #expect(try orphans.decode(Int.self, at: 0) == 0)
            #expect(try orphans.decode(Int.self, at: 1) == 0)
        }
    }

    @Test("channel_report: per channel and hour, sent, delivered, read, failed, delivery rate, median time to delivered")
    func channelReport() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 6, channel: "promo", body: "x") { db, c, channel, contacts, b in
            try await c.execute("DELETE FROM herald.jobs")
            // Six messages sent at 10:15: delivered after 10 s, 20 s and 30 s (one of them also read),
            // one read without a delivered receipt after 40 s, one still sent, one failed after sending;
            // plus one failed at 11:05 without ever being sent.
            try await c.execute("""
                WITH m AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM herald.messages WHERE broadcast_id = \(b))
                UPDATE herald.messages x SET
                    sent_at = '2026-01-05 10:15:00+00',
                    status = CASE m.n WHEN 1 THEN 'delivered' WHEN 2 THEN 'delivered' WHEN 3 THEN 'read' WHEN 4 THEN 'read'
                                      WHEN 5 THEN 'sent' ELSE 'failed' END,
                    delivered_at = CASE WHEN m.n <= 3 THEN '2026-01-05 10:15:00+00'::timestamptz + m.n * interval '10 seconds' END,
                    read_at = CASE WHEN m.n IN (3, 4) THEN '2026-01-05 10:15:40+00'::timestamptz END,
                    failed_at = CASE WHEN m.n = 6 THEN '2026-01-05 10:20:00+00'::timestamptz END
                FROM m WHERE x.id = m.id
                """)
            let other = try await WorkerFixtures.contacts(c, count: 1)
            try await c.execute("""
                INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, status, failed_at)
                VALUES (\(b), \(other[0]), \(channel), 'failed', '2026-01-05 11:05:00+00')
                """)
            let rows = try await c.query("""
                SELECT channel, hour, sent, delivered, read, failed, delivery_rate::float8, extract(epoch FROM median_time_to_delivered)::float8
                FROM herald.channel_report WHERE channel = 'promo' ORDER BY hour
                """)
            #expect(rows.count == 2)
            #expect(try rows[0].decode(Date.self, at: 1) == Date(timeIntervalSince1970: 1_767_607_200)) // 2026-01-05 10:00 UTC
            #expect(try (2...5).map { try rows[0].decode(Int.self, at: $0) } == [6, 4, 2, 1])
            #expect(try rows[0].decode(Double.self, at: 6) == 0.6667)
            #expect(try rows[0].decode(Double.self, at: 7) == 25) // median of 10, 20, 30, 40 s
            #expect(try (2...5).map { try rows[1].decode(Int.self, at: $0) } == [0, 0, 0, 1])
            #expect(try rows[1].decode(Double?.self, at: 6) == nil)
        }
    }

    // MARK: herald report

    @Test("herald report: a table, one broadcast with shares, --json; unknown id and unreachable database fail in one line")
    func command() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await WorkerFixtures.withSandboxBroadcast(to: 4, channel: "promo-sms", body: "x") { db, c, channel, contacts, b in
            try await c.execute("""
                WITH d AS (DELETE FROM herald.jobs WHERE message_id IN (SELECT id FROM herald.messages WHERE broadcast_id = \(b) ORDER BY id LIMIT 3) RETURNING message_id)
                UPDATE herald.messages SET status = 'delivered' WHERE id IN (SELECT message_id FROM d)
                """)

            let all = try HeraldProcess.start(bin, ["report"], databaseURL: db.url)
            #expect(await all.wait() == 0, "stderr: \(all.stderr)")
            let lines = all.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("ID  NAME") == true)
            #expect(lines.count == 2)
            #expect(lines[1].contains("promo-sms") && lines[1].contains("sending"))

            let one = try HeraldProcess.start(bin, ["report", "\(b)"], databaseURL: db.url)
            #expect(await one.wait() == 0, "stderr: \(one.stderr)")
            #expect(one.stdout.contains("delivered   3   75.0%"))
            #expect(one.stdout.contains("queued      1   25.0%"))

            let json = try HeraldProcess.start(bin, ["report", "\(b)", "--json"], databaseURL: db.url)
            #expect(await json.wait() == 0, "stderr: \(json.stderr)")
            let decoded = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            #expect(decoded?["broadcast_id"] as? Int == Int(b))
            #expect(decoded?["delivered"] as? Int == 3)
            #expect(decoded?["recipients"] as? Int == 4)
            #expect(decoded?["channel"] as? String == "promo-sms")
            #expect(decoded?.keys.contains("finished_at") == true, "null columns are printed as null")

            let missing = try HeraldProcess.start(bin, ["report", "999999"], databaseURL: db.url)
            #expect(await missing.wait() != 0)
            #expect(missing.stderr == "herald: no broadcast with id 999999\n")
        }
        let down = try HeraldProcess.start(bin, ["report"], databaseURL: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
        #expect(await down.wait() != 0)
        #expect(down.stderr.hasPrefix("herald: cannot connect to the database"))
        #expect(down.stderr.split(separator: "\n").count == 1)
    }

    @Test("herald webhooks stops cleanly on SIGTERM with exit status 0")
    func webhooksSIGTERM() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await withTestDatabase { db in
            let p = try HeraldProcess.start(bin, ["webhooks", "--port", "0", "--host", "127.0.0.1"], databaseURL: db.url)
            for _ in 0..<200 where !p.stderr.contains("webhooks server listening") {
                try await Task.sleep(for: .milliseconds(25))
            }
            #expect(p.stderr.contains("webhooks server listening"))
            p.signal(SIGTERM)
            #expect(await p.wait() == 0, "\(p.stderr)")
            #expect(p.stderr.contains("webhooks server stopped"))
        }
    }
}
