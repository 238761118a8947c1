import Foundation
import HeraldCore
import HeraldPostgres
import HeraldSQL
import HeraldStore
import HeraldTesting
import Testing

/// Migration 0008: what the schema refuses at the admin tool's own write, what it does with rows
/// written before, and limiter functions no stored value can push out of range.
@Suite("Write-time checks and bounded limiter (0008)")
struct WriteTimeCheckTests {
    static func channel(_ c: PostgresConnection, rate: String = "10", burst: Int = 5) async throws -> Int64 {
        try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, rate_per_second, burst)
            VALUES ('c' || floor(random() * 1e9)::bigint, 'sms', 'sandbox', \(rate)::numeric, \(burst)) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    @Test("each bad row of issue 16 fails at its own INSERT, naming the constraint", arguments: [
        ("template_params = '[null]'", "INSERT INTO herald.broadcasts (name, channel_id, template_params) SELECT 'b', id, '[null]' FROM herald.channels LIMIT 1", "broadcasts_template_params_strings"),
        ("template_params = '[1]'", "INSERT INTO herald.broadcasts (name, channel_id, template_params) SELECT 'b', id, '[1]' FROM herald.channels LIMIT 1", "broadcasts_template_params_strings"),
        ("template_params = '[[\"a\"]]'", "INSERT INTO herald.broadcasts (name, channel_id, template_params) SELECT 'b', id, '[[\"a\"]]' FROM herald.channels LIMIT 1", "broadcasts_template_params_strings"),
        ("send_at = 'infinity'", "INSERT INTO herald.broadcasts (name, channel_id, send_at) SELECT 'b', id, 'infinity' FROM herald.channels LIMIT 1", "broadcasts_send_at_finite"),
        ("send_at = '-infinity'", "INSERT INTO herald.broadcasts (name, channel_id, send_at) SELECT 'b', id, '-infinity' FROM herald.channels LIMIT 1", "broadcasts_send_at_finite"),
        ("rate_per_second = 1e-20", "INSERT INTO herald.channels (name, kind, provider, rate_per_second) VALUES ('x', 'sms', 'sandbox', 1e-20)", "channels_rate_range"),
        ("rate_per_second = 1e400", "INSERT INTO herald.channels (name, kind, provider, rate_per_second) VALUES ('x', 'sms', 'sandbox', 1e400)", "channels_rate_range"),
        ("burst = 2000000000", "INSERT INTO herald.channels (name, kind, provider, burst) VALUES ('x', 'sms', 'sandbox', 2000000000)", "channels_burst_range"),
    ])
    func rejected(what: String, sql: String, constraint: String) async throws {
        try await withTestConnection { db, c in
            _ = try await Self.channel(c)
            let error = await #expect(throws: PostgresError.self, "\(what) must be refused") {
                try await c.simpleQuery(sql)
            }
            #expect(error?.sqlState == "23514")
            #expect(error?.message.contains(constraint) == true, "\(error.map { "\($0)" } ?? "no error")")
        }
    }

    @Test("good rows still pass: string arrays, null, finite times, the range's edges")
    func accepted() async throws {
        try await withTestConnection { db, c in
            let ch = try await Self.channel(c, rate: "0.001", burst: 1_000_000)
            _ = try await Self.channel(c, rate: "1000000")
            for params in ["[]", "[\"a\", \"{{ first_name }}\"]"] {
                try await c.execute("INSERT INTO herald.broadcasts (name, channel_id, template_params, send_at) VALUES ('b', \(ch), \(params)::jsonb, now())")
            }
            try await c.execute("INSERT INTO herald.broadcasts (name, channel_id) VALUES ('b', \(ch))")
        }
    }

    @Test("rows written before 0008 that break a check: the migration succeeds, the check is NOT VALID, new writes are refused")
    func existingRows() async throws {
        try await withTestDatabase(migrated: false) { db in
            let c = try await db.connect()
            try await Migrator(migrations: Array(Migrations.all.prefix(7))).migrate(on: c)
            let ch = try await Self.channel(c, rate: "1e-20")
            try await c.execute("INSERT INTO herald.broadcasts (name, channel_id, template_params, send_at) VALUES ('b', \(ch), '[null]', 'infinity')")
            let applied = try await Migrator().migrate(on: c)
            #expect(applied.contains("0012_write_time_checks.sql"))
            let rows = try await c.query("""
                SELECT conname, convalidated FROM pg_constraint
                WHERE connamespace = 'herald'::regnamespace
                  AND conname IN ('broadcasts_template_params_strings', 'broadcasts_send_at_finite', 'channels_rate_range', 'channels_burst_range')
                """)
            var valid: [String: Bool] = [:]
            for r in rows { valid[try r.decode(String.self, at: 0)] = try r.decode(Bool.self, at: 1) }
            #expect(valid == ["broadcasts_template_params_strings": false, "broadcasts_send_at_finite": false,
                              "channels_rate_range": false, "channels_burst_range": true])
            await #expect(throws: PostgresError.self) {
                try await c.execute("INSERT INTO herald.broadcasts (name, channel_id, template_params) VALUES ('b', \(ch), '[null]')")
            }
            // The old channel's rate is clamped by the limiter: a bounded wait, no failed cast.
            let take = try await c.query("SELECT granted, wait_seconds FROM herald.take_tokens(\(ch), 10)")[0]
            #expect(try take.decode(Double.self, at: 1) <= 3600)
        }
    }

    @Test("limiter: seeded random stored rates and throttles never fail the functions; waits stay within 0...3600 s")
    func limiterFuzz() async throws {
        try await withTestConnection { db, c in
            // Simulate rows that predate the checks.
            try await c.simpleQuery("ALTER TABLE herald.channels DROP CONSTRAINT channels_rate_range, DROP CONSTRAINT channels_burst_range")
            let ch = try await Self.channel(c)
            let rates = ["1e-20", "1e-300", "0.001", "0.5", "10", "80", "1000000", "1e20", "1e400", "1e1000"]
            let bursts = [1, 2, 100, 1_000_000, Int(Int32.max)]
            let throttles: [Double] = [.nan, .infinity, -.infinity, 1e300, 1e20, 9_999_999_999_999, -5, 0, 0.001, 3599, 7200]
            var state: UInt64 = 0x0008
            func pick<T>(_ xs: [T]) -> T {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return xs[Int((state >> 33) % UInt64(xs.count))]
            }
            for _ in 0..<300 {
                try await c.execute("UPDATE herald.channels SET rate_per_second = \(pick(rates))::numeric, burst = \(pick(bursts)) WHERE id = \(ch)")
                switch Int(state >> 60) % 3 {
                case 0: try await c.execute("SELECT herald.throttle_channel(\(ch), \(pick(throttles)))")
                case 1: try await c.execute("SELECT herald.return_tokens(\(ch), \(pick([1, 5, 1000, Int(Int32.max)])))")
                default: try await c.execute("UPDATE herald.rate_buckets SET refreshed_at = now() - interval '1 hour' WHERE channel_id = \(ch)")
                }
                let wanted = pick([1, 200, 5000])
                let row = try await c.query("SELECT granted, wait_seconds FROM herald.take_tokens(\(ch), \(wanted))")[0]
                let granted = try row.decode(Int.self, at: 0), wait = try row.decode(Double.self, at: 1)
                #expect((0...wanted).contains(granted))
                #expect(wait >= 0 && wait <= 3600, "wait \(wait)")
                #expect(Duration.clampedSeconds(wait) <= .seconds(3600))
            }
            let until = try await c.query("SELECT extract(epoch FROM refreshed_at - now())::float8 FROM herald.rate_buckets WHERE channel_id = \(ch)")[0]
            #expect(try until.decode(Double.self, at: 0) <= 3600.5)
        }
    }

    @Test("a provider throttle of 1e13 s pauses the channel for an hour, and a later short one does not extend it further")
    func throttleCapped() async throws {
        try await withTestConnection { db, c in
            let ch = try await Self.channel(c)
            try await c.execute("SELECT herald.throttle_channel(\(ch), \(9_999_999_999_999.0))")
            try await c.execute("SELECT herald.throttle_channel(\(ch), \(5.0))")
            let left = try await c.query("SELECT extract(epoch FROM refreshed_at - clock_timestamp())::float8 FROM herald.rate_buckets WHERE channel_id = \(ch)")[0]
                .decode(Double.self, at: 0)
            #expect(left > 3500 && left <= 3600)
            try await c.execute("SET herald.max_throttle_seconds = '60'")
            let wait = try await c.query("SELECT wait_seconds FROM herald.take_tokens(\(ch), 10)")[0].decode(Double.self, at: 0)
            #expect(wait <= 60, "ops' herald.max_throttle_seconds caps waits too")
        }
    }

    @Test("an edit of a sending or paused broadcast's content is stamped for re-validation; other updates are not")
    func editsStamped() async throws {
        try await withTestConnection { db, c in
            let ch = try await Self.channel(c)
            func stamped(_ id: Int64) async throws -> Bool {
                try await c.query("SELECT definition_changed_at IS NOT NULL FROM herald.broadcasts WHERE id = \(id)")[0].decode(Bool.self, at: 0)
            }
            let id = try await c.query("INSERT INTO herald.broadcasts (name, channel_id, body, status) VALUES ('b', \(ch), 'x', 'scheduled') RETURNING id")[0].decode(Int64.self, at: 0)
            try await c.execute("UPDATE herald.broadcasts SET body = 'y' WHERE id = \(id)")
            #expect(try await !stamped(id), "a scheduled broadcast is validated when it starts")
            try await c.execute("UPDATE herald.broadcasts SET status = 'sending' WHERE id = \(id)")
            try await c.execute("UPDATE herald.broadcasts SET status = 'paused' WHERE id = \(id)")
            try await c.execute("UPDATE herald.broadcasts SET body = 'y' WHERE id = \(id)")
            #expect(try await !stamped(id), "pause and a no-op write change nothing")
            try await c.execute("UPDATE herald.broadcasts SET body = NULL, status = 'sending' WHERE id = \(id)")
            #expect(try await stamped(id))
        }
    }

    @Test("an edit of any column the workers render from or validation reads stamps a sending broadcast (0016)", arguments: [
        "media = '[{\"type\": \"image\", \"url\": \"https://cdn.example/a.png\"}]'",
        "template_header_params = '[\"x\"]'",
        "template_button_params = '[\"x\"]'",
        "send_window = '{\"from\": \"09:00\", \"to\": \"20:00\"}'",
        "local_send_at = true",
        "time_zone = 'Africa/Lagos'",
    ])
    func everyRenderedColumnStamped(assignment: String) async throws {
        try await withTestConnection { db, c in
            let ch = try await Self.channel(c)
            let id = try await c.query("INSERT INTO herald.broadcasts (name, channel_id, body, status) VALUES ('b', \(ch), 'x', 'sending') RETURNING id")[0].decode(Int64.self, at: 0)
            let stamped = try await c.query(PostgresQuery(unsafeSQL: "UPDATE herald.broadcasts SET \(assignment) WHERE id = $1 RETURNING definition_changed_at IS NOT NULL",
                                                          binds: [String(id)]))
            #expect(try stamped[0].decode(Bool.self, at: 0))
        }
    }
}
