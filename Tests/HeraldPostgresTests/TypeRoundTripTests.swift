import Foundation
import HeraldPostgres
import HeraldTesting
import Testing

@Suite("Values round-trip through PostgreSQL unchanged")
struct TypeRoundTripTests {
    @Test("text, including Unicode, hostile strings and a large value")
    func text() async throws {
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let samples = ["", "plain", "Adéwálé Ọ̀ṣun, ẹ kú àárọ̀", "你好，世界", "👋🏾🇳🇬 family: 👨‍👩‍👧",
                           "'); DROP TABLE herald.contacts; --", "NULL", "back\\slash \"quote\" {brace,}",
                           String(repeating: "ab€", count: 400_000)]
            for sample in samples {
                let row = try await conn.query("SELECT \(sample)::text AS v, length(\(sample)::text) AS n")[0]
                #expect(try row.decode(String.self, "v") == sample)
                #expect(try row.decode(Int.self, "n") == sample.unicodeScalars.count)
            }
        }
    }

    @Test("integers, bool, double, numeric and NULL")
    func scalars() async throws {
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let row = try await conn.query("""
                SELECT \(Int64.max)::bigint AS big, \(Int32.min)::int AS small, \(true)::bool AS yes,
                       \(false)::bool AS no, \(2.5e-300)::float8 AS dbl, \(Decimal(string: "12345678901234567890.000123")!)::numeric AS num,
                       NULL::int AS missing, \(Optional<String>.none)::text AS bound_null
                """)[0]
            #expect(try row.decode(Int64.self, "big") == Int64.max)
            #expect(try row.decode(Int32.self, "small") == Int32.min)
            #expect(try row.decode(Bool.self, "yes") == true)
            #expect(try row.decode(Bool.self, "no") == false)
            #expect(try row.decode(Double.self, "dbl") == 2.5e-300)
            #expect(try row.decode(Decimal.self, "num") == Decimal(string: "12345678901234567890.000123")!)
            #expect(try row.decode(Int?.self, "missing") == nil)
            #expect(try row.decode(String?.self, "bound_null") == nil)
            #expect(throws: PostgresError.self) { try row.decode(Int.self, "missing") }
        }
    }

    @Test("timestamptz keeps microseconds and the instant, whatever the time zone")
    func timestamps() async throws {
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let date = Date(timeIntervalSince1970: 1_795_000_000.123456)
            let row = try await conn.query("""
                SELECT \(date)::timestamptz AS t, '2026-11-26 01:02:03.5+01:30'::timestamptz AS offset_t,
                       '1969-07-20 20:17:40+00'::timestamptz AS old
                """)[0]
            let back = try row.decode(Date.self, "t")
            #expect(abs(back.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
            #expect(try row.decode(Date.self, "offset_t") == Date(timeIntervalSince1970: 1_795_649_523.5))
            #expect(try row.decode(Date.self, "old") == Date(timeIntervalSince1970: -14_182_940))
        }
    }

    @Test("arrays of text and integers, with NULLs and awkward elements")
    func arrays() async throws {
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let texts: [String?] = ["a", "NULL", nil, "", "{x,y}", "say \"hi\"", "back\\slash", "emoji 😀", "comma,here"]
            let row = try await conn.query("SELECT \(texts)::text[] AS t, \([Int64(1), -2, 3])::bigint[] AS i, '{}'::int[] AS e, cardinality(\(texts)::text[]) AS n")[0]
            #expect(try row.decode([String?].self, "t") == texts)
            #expect(try row.decode([Int64].self, "i") == [1, -2, 3])
            #expect(try row.decode([Int].self, "e") == [])
            #expect(try row.decode(Int.self, "n") == texts.count)
        }
    }

    @Test("jsonb in and out")
    func json() async throws {
        struct Payload: Codable, Equatable { var name: String; var tags: [String] }
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let value = Payload(name: "Ọlá 🎉", tags: ["vip", "lagos"])
            let row = try await conn.query("SELECT \(try PostgresJSON(encoding: value))::jsonb AS j, (\(try PostgresJSON(encoding: value))::jsonb)->>'name' AS n")[0]
            #expect(try row.decode(PostgresJSON.self, "j").decode(Payload.self) == value)
            #expect(try row.decode(String.self, "n") == "Ọlá 🎉")
        }
    }

    @Test("hostile strings stay inert as parameters")
    func injection() async throws {
        try await withTestConnection { db, conn in
            let hostile = "'); DROP TABLE herald.contacts; --"
            try await conn.execute("INSERT INTO herald.contacts (first_name) VALUES (\(hostile))")
            let rows = try await conn.query("SELECT first_name FROM herald.contacts WHERE first_name = \(hostile)")
            #expect(rows.count == 1)
            #expect(try rows[0].decode(String.self, at: 0) == hostile)
            let stillThere = try await conn.query("SELECT to_regclass('herald.contacts') IS NOT NULL")
            #expect(try stillThere[0].decode(Bool.self, at: 0))
        }
    }
}
