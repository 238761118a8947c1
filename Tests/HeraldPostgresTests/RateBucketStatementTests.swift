import Foundation
import HeraldPostgres
import HeraldTesting
import Testing

/// Migration 0021: the claim's `take_tokens(channel, wanted, rate, burst)` spends a bucket in one
/// statement where it can, and must decide exactly as the two-argument function of 0012 does.
@Suite("Rate bucket taken in one statement (0021)")
struct RateBucketStatementTests {
    /// One outcome of a call: what it granted, the wait it asked for, and the bucket it left.
    struct Taken: CustomStringConvertible {
        var granted: Int
        var wait: Double
        var tokens: Double?
        var throttledFor: Double?
        /// What the bucket says it last granted: written only by the one-statement path.
        var lastGranted = 0
        var description: String { "granted \(granted), wait \(wait), tokens \(tokens.map { "\($0)" } ?? "nil"), throttled for \(throttledFor.map { "\($0)" } ?? "nil")" }
    }

    @Test("seeded random buckets: the one-statement form grants, waits and leaves the bucket as the two-argument form")
    func agreesWithTheTwoArgumentForm() async throws {
        try await withTestConnection { _, c in
            // Two channels with the same rate and burst; before each round both buckets are set to
            // the same state (or both removed), then each function spends one.
            try await c.simpleQuery("""
                INSERT INTO herald.channels (id, name, kind, provider, rate_per_second, burst) OVERRIDING SYSTEM VALUE
                VALUES (9001, 'old', 'sms', 'sandbox', 1, 1), (9002, 'new', 'sms', 'sandbox', 1, 1)
                """)
            let rates = ["0.001", "0.4", "1", "10", "20", "80", "1000", "1000000"]
            let bursts = [1, 2, 5, 20, 100, 1_000_000]
            let tokens = ["0", "0.5", "3.7", "19.99", "1e6", "-3", "'NaN'", "'Infinity'", "'-Infinity'"]  // SQL text
            let refreshed = ["now() - interval '1 hour'", "now() - interval '1 second'", "now() - interval '50 milliseconds'",
                             "now()", "now() + interval '5 seconds'", "now() + interval '1 year'", "'infinity'", "'-infinity'"]
            let wanted = [-1, 0, 1, 3, 10, 200, 5000]
            var state: UInt64 = 0x0021
            func pick<T>(_ xs: [T]) -> T {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return xs[Int((state >> 33) % UInt64(xs.count))]
            }
            var spentInOneStatement = 0
            for round in 0..<400 {
                let rate = pick(rates), burst = pick(bursts), want = pick(wanted)
                try await c.execute("UPDATE herald.channels SET rate_per_second = \(rate)::numeric, burst = \(burst) WHERE id IN (9001, 9002)")
                try await c.execute("DELETE FROM herald.rate_buckets WHERE channel_id IN (9001, 9002)")
                let stored = (tokens: pick(tokens), refreshed: pick(refreshed))
                let hasBucket = round % 7 != 0  // every seventh round: no bucket yet
                if hasBucket {
                    try await c.execute("""
                        INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at)
                        SELECT id, \(unescaped: stored.tokens)::float8, \(unescaped: stored.refreshed) FROM herald.channels WHERE id IN (9001, 9002)
                        """)
                }
                // The one statement serves a bucket that exists, is finite and not throttled.
                let oneStatement = hasBucket && want > 0 && !stored.tokens.contains("'") && stored.refreshed.hasPrefix("now()")
                    && !stored.refreshed.contains("+")
                // One statement, so both see the same stored state; its round trip bounds the time
                // between the two calls, and so how far their refills may differ.
                let started = ContinuousClock.now
                let row = try await c.query("""
                    SELECT o.granted AS og, o.wait_seconds AS ow, n.granted AS ng, n.wait_seconds AS nw
                    FROM herald.take_tokens(9001, \(want)) o,
                         LATERAL (SELECT * FROM herald.channels WHERE id = 9002) ch,
                         LATERAL herald.take_tokens(9002, \(want), ch.rate_per_second, ch.burst) n
                    """)[0]
                let elapsed = (ContinuousClock.now - started).inSeconds
                let (old, new) = try await Self.taken(c, old: (granted: row.decode(Int.self, "og"), wait: row.decode(Double.self, "ow")),
                                                      new: (granted: row.decode(Int.self, "ng"), wait: row.decode(Double.self, "nw")))
                // The two calls ran microseconds apart: the refill may differ by the rate times that.
                let slack = min(Double(rate)!, 1_000_000) * 0.98 * elapsed + 1e-6
                let context = "round \(round): rate \(rate), burst \(burst), wanted \(want): old \(old); new \(new)"
                #expect(abs(Double(old.granted - new.granted)) <= slack.rounded(.up), "\(context)")
                // The wait is the shortfall over the rate: it differs by what the buckets hold.
                let shortfall = slack + abs(Double(old.granted - new.granted))
                #expect(abs(old.wait - new.wait) <= max(elapsed, shortfall / (min(Double(rate)!, 1_000_000) * 0.98)) + 1e-6, "\(context)")
                switch (old.tokens, new.tokens) {
                case let (a?, b?) where !a.isFinite || !b.isFinite:  // left as stored (a throttle, nothing wanted)
                    #expect(a == b || (a.isNaN && b.isNaN), "\(context)")
                case let (a?, b?):
                    // What each refilled to: a grant that differs by one (the refill crossed a whole
                    // token between the calls) leaves a token's difference in the bucket.
                    let refilledOld = a + Double(old.granted), refilledNew = b + Double(new.granted)
                    #expect(abs(refilledOld - refilledNew) <= slack + 1e-9 * max(abs(a), 1), "\(context)")
                case (nil, nil): break
                default: Issue.record("one bucket exists and the other does not: \(context)")
                }
                #expect((old.throttledFor == nil) == (new.throttledFor == nil), "\(context)")
                if let a = old.throttledFor, let b = new.throttledFor { #expect(a == b || abs(a - b) < 0.5, "\(context)") }
                #expect(old.lastGranted == 0, "the two-argument form never takes the one-statement path: \(context)")
                if oneStatement {
                    #expect(new.lastGranted == new.granted, "\(context)")
                    if new.granted > 0 { spentInOneStatement += 1 }
                } else {
                    #expect(new.lastGranted == 0, "no bucket, a throttle, a non-finite value or nothing wanted: \(context)")
                }
            }
            // Both paths ran, the one statement with grants in many rounds.
            #expect(spentInOneStatement >= 30, "\(spentInOneStatement) of 400 rounds")
        }
    }

    @Test("a bucket that exists and is not throttled is spent by the one statement, and says what it granted")
    func commonCaseIsOneStatement() async throws {
        try await withTestConnection { _, c in
            try await c.simpleQuery("""
                INSERT INTO herald.channels (id, name, kind, provider, rate_per_second, burst) OVERRIDING SYSTEM VALUE VALUES (9003, 'c', 'sms', 'sandbox', 0.001, 20);
                INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at) VALUES (9003, 7.5, clock_timestamp());
                """)
            let row = try await c.query("""
                SELECT t.granted, t.wait_seconds FROM herald.channels ch, herald.take_tokens(ch.id, 5, ch.rate_per_second, ch.burst) t
                WHERE ch.id = 9003
                """)[0]
            #expect(try row.decode(Int.self, at: 0) == 5)
            let bucket = try await c.query("SELECT last_granted, tokens FROM herald.rate_buckets WHERE channel_id = 9003")[0]
            #expect(try bucket.decode(Int.self, at: 0) == 5, "the UPDATE itself recorded the grant")
            let left = try bucket.decode(Double.self, at: 1)
            #expect(left >= 2.5 && left < 2.501, "7.5 tokens, milliseconds of refill at 0.00098/s, less 5: \(left)")
            // Half of what the claim could use (2.5) is there already: no wait.
            #expect(try row.decode(Double.self, at: 1) == 0)
        }
    }

    /// The buckets of channels 9001 (`old`) and 9002 (`new`) as the two calls left them, with each
    /// call's results. One statement reads both against one instant (`statement_timestamp()`), so
    /// their remaining throttles compare however long the machine stalls between statements.
    static func taken(_ c: PostgresConnection, old: (granted: Int, wait: Double),
                      new: (granted: Int, wait: Double)) async throws -> (old: Taken, new: Taken) {
        let rows = try await c.query("""
            SELECT channel_id, tokens,
                   CASE WHEN refreshed_at = 'infinity' THEN 'Infinity'::float8
                        WHEN refreshed_at > statement_timestamp() THEN extract(epoch FROM refreshed_at - statement_timestamp())::float8 END,
                   last_granted
            FROM herald.rate_buckets WHERE channel_id IN (9001, 9002)
            """)
        var buckets: [Int: PostgresRow] = [:]
        for row in rows { buckets[try row.decode(Int.self, at: 0)] = row }
        func taken(_ channel: Int, _ call: (granted: Int, wait: Double)) throws -> Taken {
            guard let bucket = buckets[channel] else { return Taken(granted: call.granted, wait: call.wait) }
            return Taken(granted: call.granted, wait: call.wait, tokens: try bucket.decode(Double.self, at: 1),
                         throttledFor: try bucket.decode(Double?.self, at: 2), lastGranted: try bucket.decode(Int.self, at: 3))
        }
        return (try taken(9001, old), try taken(9002, new))
    }
}
