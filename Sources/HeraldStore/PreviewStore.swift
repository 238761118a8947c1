import Foundation
import HeraldPostgres

/// The read-only queries of `herald preview`: the same audience, eligibility and timing rules as
/// expansion (``SchedulerStore/expandChunk(of:channelID:eligibility:previousCursor:low:high:)``),
/// chunk by chunk over contact ids, without writing anything. The caller runs them inside a
/// `READ ONLY` transaction, so `now()` is one instant for the whole preview.
public struct PreviewStore: Sendable {
    public let connection: PostgresConnection

    public init(_ connection: PostgresConnection) {
        self.connection = connection
    }

    /// Starts the read-only transaction every other call runs in.
    public func begin() async throws {
        try await connection.simpleQuery("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    }

    /// Ends it (nothing was written: a rollback).
    public func end() async throws {
        try await connection.simpleQuery("ROLLBACK")
    }

    /// A contact of the audience with its eligibility, as expansion would decide it.
    public struct Candidate: Sendable, Equatable {
        public var contactID: Int64
        /// `opted_out`, `invalid_address`, `outside_whatsapp_window`, or nil when it would be sent.
        public var skipReason: String?
        public var address: String?
        public var firstName: String?
        public var lastName: String?
        public var phone: String?
        public var email: String?
        /// The custom fields asked for, by key; absent when null.
        public var attributes: [String: String]
        /// `contacts.time_zone`, "" when null.
        public var zoneKey: String
    }

    /// The audience members with contact ids in `low...high`, with their skip reasons, ordered by id.
    public func candidates(of id: Int64, eligibility: SchedulerStore.Eligibility, low: Int64, high: Int64,
                           attributeKeys: [String]) async throws -> [Candidate] {
        let rows = try await connection.query(.joined([
            SchedulerStore.audienceCTEs(of: id, eligibility: eligibility, low: low, high: high), """
            SELECT c.id, \(unescaped: SchedulerStore.skipReasonSQL(eligibility)) AS skip_reason, a.address,
                   c.first_name, c.last_name, c.phone, c.email,
                   ARRAY(SELECT c.attributes ->> k FROM unnest(\(attributeKeys)::text[]) AS k) AS attrs,
                   coalesce(c.time_zone, '') AS zone_key
            FROM audience au
            \(unescaped: SchedulerStore.audienceJoinsSQL(eligibility))
            ORDER BY c.id
            """]))
        return try rows.map { r in
            var attributes: [String: String] = [:]
            for (key, value) in zip(attributeKeys, try r.decode([String?].self, "attrs")) { if let value { attributes[key] = value } }
            return Candidate(contactID: try r.decode(Int64.self, "id"), skipReason: try r.decode(String?.self, "skip_reason"),
                             address: try r.decode(String?.self, "address"), firstName: try r.decode(String?.self, "first_name"),
                             lastName: try r.decode(String?.self, "last_name"), phone: try r.decode(String?.self, "phone"),
                             email: try r.decode(String?.self, "email"), attributes: attributes, zoneKey: try r.decode(String.self, "zone_key"))
        }
    }

    /// When the recipients of one zone would first be due, by the expansion's rule.
    public struct ZoneTiming: Sendable, Equatable {
        /// `contacts.time_zone` as written ("" for null).
        public var zoneKey: String
        /// False when PostgreSQL does not know it (the broadcast's zone is used instead).
        public var known: Bool
        /// The zone used.
        public var zone: String
        /// When they are due, before the send window is applied (now, or with `local_send_at`
        /// send_at's wall clock in `zone` when that is later).
        public var dueAt: Date
        /// The job's `run_at` expansion would write now: `dueAt` pushed to the window's opening.
        public var firstRunAt: Date
    }

    /// ``ZoneTiming`` for each of `zoneKeys`, from the broadcast's timing columns and `now()`.
    public func zoneTimings(of id: Int64, zoneKeys: [String]) async throws -> [ZoneTiming] {
        let rows = try await connection.query("""
            WITH b AS (
                SELECT send_window, local_send_at, send_at, coalesce(time_zone, 'UTC') AS zone
                FROM herald.broadcasts WHERE id = \(id) AND (time_zone IS NULL OR herald.time_zone_known(time_zone))
            )
            SELECT k.zone_key, k.known, r.zone, d.due_at, herald.next_send_opening(b.send_window, r.zone, d.due_at) AS first_run_at
            FROM (SELECT zone_key, zone_key = '' OR herald.time_zone_known(zone_key) AS known
                  FROM unnest(\(zoneKeys)::text[]) AS zone_key) k
            CROSS JOIN b
            CROSS JOIN LATERAL (SELECT CASE WHEN k.zone_key <> '' AND k.known THEN k.zone_key ELSE b.zone END AS zone) r
            CROSS JOIN LATERAL (SELECT greatest(now(), CASE WHEN b.local_send_at AND b.send_at IS NOT NULL
                                                            THEN herald.local_due_at(b.send_at, b.zone, r.zone) END) AS due_at) d
            """)
        return try rows.map {
            ZoneTiming(zoneKey: try $0.decode(String.self, "zone_key"), known: try $0.decode(Bool.self, "known"),
                       zone: try $0.decode(String.self, "zone"), dueAt: try $0.decode(Date.self, "due_at"),
                       firstRunAt: try $0.decode(Date.self, "first_run_at"))
        }
    }

    /// The openings of `window` (JSON text) in each of `zones` from `from` for `days` days, as
    /// (opens, closes) instants, in order (`herald.send_window_openings`, the rule the claim applies).
    public func windowIntervals(_ window: String, zones: [String], from: Date, days: Int) async throws -> [String: [(opens: Date, closes: Date)]] {
        let rows = try await connection.query("""
            SELECT z.zone, o.opens, o.closes
            FROM unnest(\(zones)::text[]) AS z(zone)
            CROSS JOIN LATERAL herald.send_window_openings(\(window)::jsonb, z.zone, \(from)::timestamptz, \(days)) o
            ORDER BY z.zone, o.opens
            """)
        var out: [String: [(opens: Date, closes: Date)]] = [:]
        for r in rows {
            out[try r.decode(String.self, "zone"), default: []].append((try r.decode(Date.self, "opens"), try r.decode(Date.self, "closes")))
        }
        return out
    }

    /// The channel's `rate_per_second`, nil when the channel does not exist.
    public func ratePerSecond(channelID: Int64) async throws -> Double? {
        try await connection.query("SELECT rate_per_second::float8 AS rate_per_second FROM herald.channels WHERE id = \(channelID)")
            .first?.decode(Double.self, "rate_per_second")
    }

    /// The database's `now()` (the transaction's start).
    public func now() async throws -> Date {
        try await connection.query("SELECT now() AS now")[0].decode(Date.self, "now")
    }
}
