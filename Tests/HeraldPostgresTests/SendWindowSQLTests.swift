import HeraldPostgres
import HeraldTesting
import Testing

/// `herald.next_send_opening`, `herald.local_due_at`, `herald.time_zone_known` and the
/// `send_window` shape check (0011_delivery_timing.sql), against PostgreSQL's own time zone database.
@Suite("Delivery timing: send windows and local times in SQL")
struct SendWindowSQLTests {
    /// One case: a window, a recipient's zone, an instant, and the expected next opening (all UTC).
    struct Case: Sendable, CustomTestStringConvertible {
        var what: String
        var window: String?
        var zone: String
        var at: String
        var expected: String
        var testDescription: String { what }
    }

    static let daytime = #"{"from": "09:00", "to": "20:00"}"#
    static let night = #"{"from": "22:00", "to": "06:00"}"#

    /// 2026-12-04 is a Friday; 2026-03-08 and 2026-11-01 are the days New York's daylight saving
    /// time starts and ends.
    static let cases: [Case] = [
        Case(what: "no window: due at once", window: nil, zone: "Africa/Lagos", at: "2026-12-05 03:00", expected: "2026-12-05 03:00"),
        Case(what: "open: 19:30 in Lagos", window: daytime, zone: "Africa/Lagos", at: "2026-12-05 18:30", expected: "2026-12-05 18:30"),
        Case(what: "at the opening itself", window: daytime, zone: "Africa/Lagos", at: "2026-12-05 08:00", expected: "2026-12-05 08:00"),
        Case(what: "closing time is closed: next morning", window: daytime, zone: "Africa/Lagos", at: "2026-12-05 19:00", expected: "2026-12-06 08:00"),
        Case(what: "before opening: this morning", window: daytime, zone: "Europe/London", at: "2026-12-05 03:00", expected: "2026-12-05 09:00"),
        Case(what: "Kolkata +05:30: 22:00-06:00 opens at 16:30 UTC", window: night, zone: "Asia/Kolkata", at: "2026-12-05 12:00", expected: "2026-12-05 16:30"),
        Case(what: "Kolkata: 05:30 local is still last night's window", window: night, zone: "Asia/Kolkata", at: "2026-12-05 00:00", expected: "2026-12-05 00:00"),
        Case(what: "Kolkata: 06:00 local closes it until 22:00", window: night, zone: "Asia/Kolkata", at: "2026-12-05 00:30", expected: "2026-12-05 16:30"),
        Case(what: "Kathmandu +05:45, Mondays only, from a Saturday", window: #"{"from": "09:00", "to": "17:00", "days": ["mon"]}"#,
             zone: "Asia/Kathmandu", at: "2026-12-05 00:00", expected: "2026-12-07 03:15"),
        Case(what: "a Friday night window is still open early Saturday", window: #"{"from": "22:00", "to": "06:00", "days": ["fri"]}"#,
             zone: "Europe/London", at: "2026-12-05 03:00", expected: "2026-12-05 03:00"),
        Case(what: "a Friday night window next opens the next Friday", window: #"{"from": "22:00", "to": "06:00", "days": ["fri"]}"#,
             zone: "Europe/London", at: "2026-12-05 22:30", expected: "2026-12-11 22:00"),
        Case(what: "New York, the day before DST starts: 09:00 EST", window: daytime, zone: "America/New_York", at: "2026-03-07 12:00", expected: "2026-03-07 14:00"),
        Case(what: "New York, the day DST starts: 09:00 EDT", window: daytime, zone: "America/New_York", at: "2026-03-08 12:00", expected: "2026-03-08 13:00"),
        Case(what: "New York, the day DST ends: 09:00 EST", window: daytime, zone: "America/New_York", at: "2026-11-01 12:00", expected: "2026-11-01 14:00"),
        Case(what: "New York, the day DST ends: 20:00 EST closes at 01:00 UTC", window: daytime, zone: "America/New_York", at: "2026-11-02 00:59", expected: "2026-11-02 00:59"),
        // PostgreSQL reads a local time inside the spring-forward gap with the offset before it.
        Case(what: "a window inside the spring-forward gap opens an hour later that day", window: #"{"from": "02:15", "to": "02:45"}"#,
             zone: "America/New_York", at: "2026-03-08 05:00", expected: "2026-03-08 07:15"),
        Case(what: "a window ending as the gap ends is empty that day", window: #"{"from": "02:30", "to": "03:00"}"#,
             zone: "America/New_York", at: "2026-03-08 05:00", expected: "2026-03-09 06:30"),
    ]

    @Test("next_send_opening", arguments: cases)
    func nextOpening(_ c: Case) async throws {
        try await withTestConnection { (_, conn) async throws in
            let row = try await conn.query("""
                SELECT herald.next_send_opening(\(c.window)::jsonb, \(c.zone), \(c.at + "+00")::timestamptz)
                       = \(c.expected + "+00")::timestamptz,
                       to_char(herald.next_send_opening(\(c.window)::jsonb, \(c.zone), \(c.at + "+00")::timestamptz)
                               AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
                """)[0]
            let got = try row.decode(String.self, at: 1)
            #expect(try row.decode(Bool.self, at: 0), "got \(got), expected \(c.expected)")
        }
    }

    @Test("local_send_at 09:00 is 09:00 in each zone, as AT TIME ZONE says, on ordinary and DST days")
    func localNine() async throws {
        try await withTestConnection { (_, conn) async throws in
            let expected: [(String, String, String)] = [
                ("2026-12-05", "Africa/Lagos", "2026-12-05 08:00"), ("2026-12-05", "Europe/London", "2026-12-05 09:00"),
                ("2026-12-05", "America/New_York", "2026-12-05 14:00"), ("2026-12-05", "Asia/Kolkata", "2026-12-05 03:30"),
                ("2026-12-05", "Asia/Kathmandu", "2026-12-05 03:15"), ("2026-12-05", "UTC", "2026-12-05 09:00"),
                ("2026-03-08", "America/New_York", "2026-03-08 13:00"), ("2026-11-01", "America/New_York", "2026-11-01 14:00"),
            ]
            for (day, zone, utc) in expected {
                let row = try await conn.query("""
                    SELECT to_char(herald.local_due_at(\(day + " 09:00+00")::timestamptz, 'UTC', \(zone)) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                           to_char(herald.local_due_at(\(day + " 09:00+00")::timestamptz, 'UTC', \(zone)) AT TIME ZONE \(zone), 'HH24:MI')
                    """)[0]
                #expect(try row.decode(String.self, at: 0) == utc, "\(zone) on \(day)")
                #expect(try row.decode(String.self, at: 1) == "09:00", "\(zone) on \(day)")
            }
        }
    }

    @Test("zone names: IANA names are known, offsets and made-up names are not")
    func zoneNames() async throws {
        try await withTestConnection { (_, conn) async throws in
            for (zone, known) in [("Africa/Lagos", true), ("Asia/Kathmandu", true), ("UTC", true), ("America/Argentina/Buenos_Aires", true),
                                  ("Etc/GMT+5", true), ("Mars/Olympus_Mons", false), ("+05:30", false), ("UTC+3", false), ("", false)] {
                #expect(try await conn.query("SELECT herald.time_zone_known(\(zone))")[0].decode(Bool.self, at: 0) == known, "\(zone)")
            }
        }
    }

    @Test("send_window: the table refuses shapes that could never be read")
    func windowShape() async throws {
        try await withTestConnection { (_, conn) async throws in
            try await conn.execute("INSERT INTO herald.channels (name, kind, provider) VALUES ('s', 'sms', 'sandbox')")
            let good = [#"{"from": "09:00", "to": "20:00"}"#, #"{"from": "22:00", "to": "06:00", "days": ["fri", "sat"]}"#,
                        #"{"from": "00:00", "to": "23:59", "days": null}"#]
            let bad = [#"[]"#, #""09:00-20:00""#, #"{"from": "9:00", "to": "20:00"}"#, #"{"from": "09:00"}"#,
                       #"{"from": "09:00", "to": "24:00"}"#, #"{"from": "09:00", "to": "09:00"}"#,
                       #"{"from": "09:00", "to": "20:00", "days": []}"#, #"{"from": "09:00", "to": "20:00", "days": ["monday"]}"#,
                       #"{"from": "09:00", "to": "20:00", "days": "mon"}"#, #"{"from": "09:00", "to": "20:00", "zone": "UTC"}"#,
                       #"{"from": 9, "to": 20}"#]
            for w in good {
                try await conn.execute("INSERT INTO herald.broadcasts (name, channel_id, body, send_window) SELECT 'b', id, 'x', \(w)::jsonb FROM herald.channels")
            }
            for w in bad {
                await #expect(throws: PostgresError.self, "\(w)") {
                    try await conn.execute("INSERT INTO herald.broadcasts (name, channel_id, body, send_window) SELECT 'b', id, 'x', \(w)::jsonb FROM herald.channels")
                }
            }
        }
    }
}
