import Foundation
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

/// Recipients' local time and send windows at expansion (SchedulerStore.expandChunk), the
/// scheduler's start of `local_send_at` broadcasts, and the window re-check at claim.
@Suite("Delivery timing: local send times and send windows")
struct DeliveryTimingTests {
    typealias F = SchedulerFixtures

    static let zones: [String?] = ["Africa/Lagos", "Europe/London", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", nil]

    /// One contact per zone of ``zones``, in that order.
    static func contacts(_ c: PostgresConnection, zones: [String?] = zones) async throws -> [Int64] {
        var ids: [Int64] = []
        for zone in zones {
            ids.append(try await c.query("""
                INSERT INTO herald.contacts (first_name, phone, time_zone) VALUES ('Ada', '+2348031234567', \(zone)) RETURNING id
                """)[0].decode(Int64.self, at: 0))
        }
        return ids
    }

    /// Writes a `draft` broadcast with delivery timing (drafts are never touched by the scheduler)
    /// and expands its whole audience directly, as the scheduler would, with `send_at` at a fixed
    /// instant: time is moved by timestamps, not by waiting.
    static func expand(_ c: PostgresConnection, contacts: [Int64], sendAt: String, window: String? = nil,
                       local: Bool = true, zone: String? = nil) async throws -> Int64 {
        let channel = try await F.channel(c)
        let id = try await c.query("""
            INSERT INTO herald.broadcasts (name, channel_id, body, send_at, local_send_at, send_window, time_zone, status)
            VALUES ('t', \(channel), 'Hi', \(sendAt + "+00")::timestamptz, \(local), \(window)::jsonb, \(zone), 'scheduled')
            RETURNING id
            """)[0].decode(Int64.self, at: 0)
        try await c.execute("INSERT INTO herald.broadcast_contacts SELECT \(id), unnest(\(contacts)::bigint[])")
        let store = SchedulerStore(c)
        let result = try await store.expandChunk(of: id, channelID: channel, eligibility: .init(kind: .sms, hasTemplate: false),
                                                 previousCursor: nil, low: contacts.min()!, high: contacts.max()!)
        #expect(result.jobs == contacts.count)
        return id
    }

    /// Each contact's job `run_at` as `YYYY-MM-DD HH24:MI` in UTC.
    static func runAt(_ c: PostgresConnection, _ broadcast: Int64) async throws -> [Int64: String] {
        var out: [Int64: String] = [:]
        for row in try await c.query("""
            SELECT m.contact_id, to_char(j.run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
            FROM herald.jobs j JOIN herald.messages m ON m.id = j.message_id WHERE j.broadcast_id = \(broadcast)
            """) {
            out[try row.decode(Int64.self, at: 0)] = try row.decode(String.self, at: 1)
        }
        return out
    }

    @Test("local_send_at 09:00 gives each recipient their own 09:00, as the database's AT TIME ZONE says, DST days included",
          arguments: [("2027-12-04", ["2027-12-04 08:00", "2027-12-04 09:00", "2027-12-04 14:00", "2027-12-04 03:30", "2027-12-04 03:15", "2027-12-04 09:00"]),
                      ("2027-03-14", ["2027-03-14 08:00", "2027-03-14 09:00", "2027-03-14 13:00", "2027-03-14 03:30", "2027-03-14 03:15", "2027-03-14 09:00"]),
                      ("2027-11-07", ["2027-11-07 08:00", "2027-11-07 09:00", "2027-11-07 14:00", "2027-11-07 03:30", "2027-11-07 03:15", "2027-11-07 09:00"])])
    func localNine(day: String, expected: [String]) async throws {
        try await withTestConnection { db, c in
            let ids = try await Self.contacts(c)
            let id = try await Self.expand(c, contacts: ids, sendAt: "\(day) 09:00")
            let runAt = try await Self.runAt(c, id)
            #expect(ids.map { runAt[$0] } == expected)
            // The same, by PostgreSQL's own AT TIME ZONE, and 09:00 on each recipient's clock.
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.jobs j JOIN herald.messages m ON m.id = j.message_id
                JOIN herald.contacts ct ON ct.id = m.contact_id
                WHERE j.broadcast_id = \(id)
                  AND j.run_at = (\(day + " 09:00")::timestamp AT TIME ZONE coalesce(ct.time_zone, 'UTC'))
                  AND to_char(j.run_at AT TIME ZONE coalesce(ct.time_zone, 'UTC'), 'HH24:MI') = '09:00'
                """) == ids.count)
        }
    }

    @Test("the broadcast's time_zone is the zone for contacts without one and the clock send_at is read on")
    func broadcastZone() async throws {
        try await withTestConnection { db, c in
            let ids = try await Self.contacts(c, zones: ["Africa/Lagos", nil])
            // 09:00 in Kolkata is 03:30 UTC: the wall clock is 09:00 wherever the recipient is.
            let id = try await Self.expand(c, contacts: ids, sendAt: "2027-12-04 03:30", zone: "Asia/Kolkata")
            #expect(try await Self.runAt(c, id) == [ids[0]: "2027-12-04 08:00", ids[1]: "2027-12-04 03:30"])
        }
    }

    @Test("a 22:00-06:00 window pushes each recipient's 09:00 to their own 22:00; the job keeps its zone for the claim")
    func nightWindow() async throws {
        try await withTestConnection { db, c in
            let ids = try await Self.contacts(c)
            let id = try await Self.expand(c, contacts: ids, sendAt: "2027-12-04 09:00", window: #"{"from": "22:00", "to": "06:00"}"#)
            let runAt = try await Self.runAt(c, id)
            #expect(ids.map { runAt[$0] } == ["2027-12-04 21:00", "2027-12-04 22:00", "2027-12-05 03:00",
                                              "2027-12-04 16:30", "2027-12-04 16:15", "2027-12-04 22:00"])
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.jobs j JOIN herald.messages m ON m.id = j.message_id
                JOIN herald.contacts ct ON ct.id = m.contact_id
                WHERE j.broadcast_id = \(id) AND j.time_zone = coalesce(ct.time_zone, 'UTC')
                """) == ids.count)
        }
    }

    @Test("without a window or local_send_at, jobs are due at once and carry no zone")
    func untimed() async throws {
        try await withTestConnection { db, c in
            let ids = try await Self.contacts(c)
            let id = try await Self.expand(c, contacts: ids, sendAt: "2027-12-04 09:00", local: false)
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(id) AND run_at <= now() AND time_zone IS NULL
                """) == ids.count)
        }
    }

    @Test("an unknown contact zone falls back to the broadcast's zone, with a warning in error; nobody is skipped")
    func unknownContactZone() async throws {
        try await withTestConnection { db, c in
            let ids = try await Self.contacts(c, zones: ["Mars/Olympus_Mons", "Mars/Olympus_Mons", "Africa/Lagos"])
            let channel = try await F.channel(c)
            let id = try await c.query("""
                INSERT INTO herald.broadcasts (name, channel_id, body, send_window, time_zone, status)
                VALUES ('t', \(channel), 'Hi', '{"from": "00:00", "to": "23:59"}', 'Europe/London', 'draft') RETURNING id
                """)[0].decode(Int64.self, at: 0)
            try await c.execute("INSERT INTO herald.broadcast_contacts SELECT \(id), unnest(\(ids)::bigint[])")
            try await c.execute("UPDATE herald.broadcasts SET status = 'scheduled' WHERE id = \(id)")
            try await F.withScheduler(db) {
                try await F.waitUntil("it is expanded") { try await F.expanded(c, id) }
            }
            #expect(try await F.status(c, id) == "sending")
            #expect(try await F.error(c, id) == #"warning: 2 contact(s) have an unknown time_zone (e.g. "Mars/Olympus_Mons"); they were given the broadcast's time_zone"#)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(id) AND time_zone = 'Europe/London'") == 2)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'queued'") == 3)
        }
    }

    @Test("an unknown broadcast time_zone fails validation and names it")
    func unknownBroadcastZone() async throws {
        try await withTestConnection { db, c in
            let ids = try await Self.contacts(c, zones: ["Africa/Lagos"])
            let channel = try await F.channel(c)
            let id = try await c.query("""
                INSERT INTO herald.broadcasts (name, channel_id, body, time_zone, status)
                VALUES ('t', \(channel), 'Hi', 'Europe/Lagos', 'draft') RETURNING id
                """)[0].decode(Int64.self, at: 0)
            try await c.execute("INSERT INTO herald.broadcast_contacts SELECT \(id), unnest(\(ids)::bigint[])")
            try await c.execute("UPDATE herald.broadcasts SET status = 'scheduled' WHERE id = \(id)")
            try await F.withScheduler(db) {
                try await F.waitUntil("it fails") { try await F.status(c, id) == "failed" }
            }
            #expect(try await F.error(c, id) == #"time_zone "Europe/Lagos" is not a known IANA time zone name (e.g. "Europe/London")"#)
        }
    }

    /// A `local_send_at` broadcast whose send_at wall clock is `offset` from now, in UTC, to
    /// contacts in Kathmandu (+05:45) and London (+00:00 in December).
    static func localBroadcast(_ c: PostgresConnection, sendAtFromNow offset: String) async throws -> (id: Int64, contacts: [Int64]) {
        let ids = try await contacts(c, zones: ["Asia/Kathmandu", "Europe/London"])
        let channel = try await F.channel(c)
        let id = try await c.query("""
            INSERT INTO herald.broadcasts (name, channel_id, body, send_at, local_send_at, status)
            VALUES ('t', \(channel), 'Hi', date_trunc('second', now()) + \(offset)::interval, true, 'draft') RETURNING id
            """)[0].decode(Int64.self, at: 0)
        try await c.execute("INSERT INTO herald.broadcast_contacts SELECT \(id), unnest(\(ids)::bigint[])")
        try await c.execute("UPDATE herald.broadcasts SET status = 'scheduled' WHERE id = \(id)")
        return (id, ids)
    }

    @Test("local_send_at: the broadcast waits for the earliest zone present in its audience, not the earliest on Earth")
    func startsAtEarliestAudienceZone() async throws {
        try await withTestConnection { db, c in
            // Kathmandu's instant is 15 minutes from now; UTC+14's bound was long past.
            let (id, _) = try await Self.localBroadcast(c, sendAtFromNow: "6 hours")
            try await F.withScheduler(db) {
                try await F.waitUntil("its start is narrowed to Kathmandu's instant") {
                    try await F.count(c, """
                        SELECT count(*) FROM herald.broadcasts WHERE id = \(id) AND starts_at = send_at - interval '5 hours 45 minutes'
                        """) == 1
                }
            }
            #expect(try await F.status(c, id) == "scheduled")
            #expect(try await F.messageCount(c, id) == 0)
        }
    }

    @Test("local_send_at: it starts at the earliest zone's instant; later zones' jobs wait for their own")
    func startsWhenFirstZoneIsDue() async throws {
        try await withTestConnection { db, c in
            // Kathmandu's instant was a minute ago; London's is in 5 h 44 min.
            let (id, ids) = try await Self.localBroadcast(c, sendAtFromNow: "5 hours 44 minutes")
            try await F.withScheduler(db) {
                try await F.waitUntil("it is expanded") { try await F.expanded(c, id) }
            }
            #expect(try await F.status(c, id) == "sending")
            let rows = try await c.query("""
                SELECT m.contact_id, j.run_at <= now(), j.run_at = b.send_at
                FROM herald.jobs j JOIN herald.messages m ON m.id = j.message_id JOIN herald.broadcasts b ON b.id = j.broadcast_id
                WHERE j.broadcast_id = \(id) ORDER BY m.contact_id
                """)
            #expect(try rows.map { try $0.decode(Int64.self, at: 0) } == ids)
            #expect(try rows[0].decode(Bool.self, at: 1))   // Kathmandu: due now
            #expect(try rows[1].decode(Bool.self, at: 2))   // London: at send_at itself
        }
    }

    /// The claim's window re-check, exactly as the lines proposed for QueueStore.claim, with
    /// `now()` replaced by a chosen instant: claims up to `limit` due jobs; due jobs whose window is
    /// closed are moved to its next opening instead. Returns the number claimed.
    static func claim(_ c: PostgresConnection, _ broadcast: Int64, at: String, limit: Int) async throws -> Int {
        try await c.query("""
            WITH due AS (
                SELECT message_id,
                       CASE WHEN time_zone IS NULL THEN \(at + "+00")::timestamptz
                            ELSE herald.job_send_opening(broadcast_id, time_zone, \(at + "+00")::timestamptz) END AS opens
                FROM herald.jobs
                WHERE broadcast_id = \(broadcast) AND run_at <= \(at + "+00")::timestamptz
                ORDER BY run_at
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), held AS (
                UPDATE herald.jobs j SET run_at = due.opens
                FROM due WHERE j.message_id = due.message_id AND due.opens > \(at + "+00")::timestamptz
            ), picked AS (
                SELECT message_id FROM due WHERE due.opens <= \(at + "+00")::timestamptz
            ), claimed AS (
                UPDATE herald.jobs j SET run_at = \(at + "+00")::timestamptz + interval '1 minute', lease_owner = 'w'
                FROM picked WHERE j.message_id = picked.message_id
                RETURNING 1
            )
            SELECT count(*) FROM claimed
            """)[0].decode(Int.self, at: 0)
    }

    @Test("a window closing mid-broadcast holds the rest until the next opening; claims do not revisit them before")
    func windowClosesMidBroadcast() async throws {
        try await withTestConnection { db, c in
            let ids = try await Self.contacts(c, zones: Array(repeating: "Africa/Lagos", count: 5))
            // 09:00-20:00 Lagos (UTC+1). Expanded at 18:50 UTC (19:50 Lagos): all five due.
            let id = try await Self.expand(c, contacts: ids, sendAt: "2020-01-06 18:50", window: #"{"from": "09:00", "to": "20:00"}"#, local: false)
            try await c.execute("UPDATE herald.jobs SET run_at = '2027-12-06 18:50+00' WHERE broadcast_id = \(id)")
            #expect(try await Self.claim(c, id, at: "2027-12-06 18:50", limit: 2) == 2)
            // Their worker records them: they leave the queue.
            try await c.execute("DELETE FROM herald.jobs WHERE broadcast_id = \(id) AND lease_owner = 'w'")
            // 20:00 Lagos: the window has closed; the other three are held, not claimed.
            #expect(try await Self.claim(c, id, at: "2027-12-06 19:00", limit: 10) == 0)
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(id) AND lease_owner IS NULL AND run_at = '2027-12-07 08:00+00'
                """) == 3)
            // Later that night (and after a pause and resume at 21:00) nothing is due.
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(id) AND lease_owner IS NULL AND run_at <= '2027-12-06 20:00+00'
                """) == 0)
            #expect(try await Self.claim(c, id, at: "2027-12-07 07:59", limit: 10) == 0)
            // 09:00 Lagos the next morning: they go.
            #expect(try await Self.claim(c, id, at: "2027-12-07 08:00", limit: 10) == 3)
        }
    }
}
