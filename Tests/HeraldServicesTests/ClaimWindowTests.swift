import Foundation
import HeraldPostgres
@testable import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

/// The worker's claim re-checks each recipient's send window: a message whose window closed since
/// expansion waits, queued, for the next opening, and no claim looks at it before then.
@Suite("Queue: send windows at claim")
struct ClaimWindowTests {
    @Test("a closed window holds the jobs until its next opening; an open one lets them go")
    func closedWindowHolds() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 4, channel: "windowed") { db, c, channel, contacts, b in
            // A window of one hour that opens two hours from now (UTC), as if it had closed after
            // expansion; the jobs carry the zone, as expansion writes it for windowed broadcasts.
            try await c.execute("""
                UPDATE herald.broadcasts SET time_zone = 'UTC', send_window = jsonb_build_object(
                    'from', to_char(now() AT TIME ZONE 'UTC' + interval '2 hours', 'HH24:MI'),
                    'to', to_char(now() AT TIME ZONE 'UTC' + interval '3 hours', 'HH24:MI'))
                WHERE id = \(b)
                """)
            try await c.execute("UPDATE herald.jobs SET time_zone = 'UTC' WHERE broadcast_id = \(b)")
            let store = QueueStore()
            let held = try await store.claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 10,
                                             lease: .seconds(30), owner: "w1", attributeKeys: [])
            #expect(held.jobs.isEmpty)
            let waits = try await c.query("""
                SELECT count(*) FILTER (WHERE run_at > now() + interval '1 hour 58 minutes' AND run_at < now() + interval '2 hours 1 minute'),
                       count(*) FILTER (WHERE lease_owner IS NOT NULL)
                FROM herald.jobs WHERE broadcast_id = \(b)
                """)[0]
            #expect(try waits.decode(Int.self, at: 0) == 4, "every job waits for the opening, two hours from now")
            #expect(try waits.decode(Int.self, at: 1) == 0, "none is leased")
            // A second claim does not look at them before then.
            let again = try await store.claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 10,
                                              lease: .seconds(30), owner: "w1", attributeKeys: [])
            #expect(again.jobs.isEmpty)

            // The window opens (here: it is moved to now): the jobs go at the next claim that finds them due.
            try await c.execute("""
                UPDATE herald.broadcasts SET send_window = jsonb_build_object(
                    'from', to_char(now() AT TIME ZONE 'UTC' - interval '1 hour', 'HH24:MI'),
                    'to', to_char(now() AT TIME ZONE 'UTC' + interval '1 hour', 'HH24:MI'))
                WHERE id = \(b)
                """)
            try await c.execute("UPDATE herald.jobs SET run_at = now() WHERE broadcast_id = \(b)")
            let open = try await store.claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 10,
                                             lease: .seconds(30), owner: "w1", attributeKeys: [])
            #expect(open.jobs.count == 4)
        }
    }

    @Test("a bucket that grants fewer tokens than asked: the claim locks only the due jobs it can take")
    func locksOnlyWhatTheBucketGrants() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 30, channel: "short") { db, c, channel, contacts, b in
            // A channel of 20/s whose bucket holds 5 tokens, refilling at 0.001/s: the claim asks for 20.
            try await c.execute("UPDATE herald.channels SET rate_per_second = 0.001, burst = 20 WHERE id = \(channel)")
            try await c.execute("""
                INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at) VALUES (\(channel), 5, clock_timestamp())
                ON CONFLICT (channel_id) DO UPDATE SET tokens = 5, refreshed_at = clock_timestamp()
                """)
            let claim = try await QueueStore().claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 20,
                                                     lease: .seconds(30), owner: "w1", attributeKeys: [])
            #expect(claim.granted == 5)
            #expect(claim.jobs.count == 5)
            // A row the claim locked and did not take keeps the claim's transaction as a lock-only
            // xmax after the commit: none may have one.
            let lockedNotTaken = try await c.query("""
                SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(b) AND lease_owner IS NULL AND xmax::text <> '0'
                """)[0].decode(Int.self, at: 0)
            #expect(lockedNotTaken == 0, "\(lockedNotTaken) due jobs were locked beyond the 5 granted")
            let waiting = try await c.query("SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(b) AND lease_owner IS NULL")[0]
            #expect(try waiting.decode(Int.self, at: 0) == 25)
        }
    }

    @Test("only a broadcast with a send window scans past what a claim asks for: the others lock exactly the due jobs they ask for")
    func scanLimits() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 1, channel: "scan") { db, c, channel, contacts, b in
            let store = QueueStore()
            let plain = try #require(try await store.activeBroadcasts(on: c, channels: nil).broadcasts.first { $0.id == b })
            #expect(!plain.hasSendWindow)
            try await c.execute("""
                UPDATE herald.broadcasts SET time_zone = 'UTC', send_window = '{"from": "09:00", "to": "17:00"}' WHERE id = \(b)
                """)
            // As the scheduler's re-validation of the edit would.
            try await c.execute("UPDATE herald.broadcasts SET definition_changed_at = NULL WHERE id = \(b)")
            let windowed = try #require(try await store.activeBroadcasts(on: c, channels: nil).broadcasts.first { $0.id == b })
            #expect(windowed.hasSendWindow)
        }
        #expect([1, 2, 3, 14, 20, 32, 33, 200].map { ChannelClaimer.scanLimit($0, batchSize: 200, hasSendWindow: false) }
                == [1, 2, 3, 14, 20, 32, 33, 200])
        #expect(ChannelClaimer.scanLimit(14, batchSize: 200, hasSendWindow: true) == 200)
        #expect(ChannelClaimer.scanLimit(300, batchSize: 200, hasSendWindow: true) == 300)
    }
}
