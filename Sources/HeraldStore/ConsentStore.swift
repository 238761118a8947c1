import Foundation
import HeraldCore
import HeraldPostgres

/// Every SQL statement of the consent loop (migration 0019): opt-outs from keywords, provider
/// answers and unsubscribe links, and the messaging tier's counts.
///
/// The writes are the functions of migration 0019, so that the worker's and the receipt
/// applier's own statements can call the same SQL inside the statement that records a failure.
public struct ConsentStore: Sendable {
    public init() {}

    /// A keyword `phone` sent on a channel of `kind`: opt-out inserts a keyword opt-out for every
    /// contact with that phone; opt-in deletes their keyword opt-outs (never other sources').
    /// - Returns: opt-out rows inserted or deleted (0 when already so: repeating is harmless).
    @discardableResult
    public func recordKeyword(_ keyword: ConsentKeyword, phone: String, kind: ChannelKind,
                              on connection: PostgresConnection) async throws -> Int {
        try await connection.query("""
            SELECT herald.record_keyword(\(phone), \(kind.rawValue), \(keyword.rawValue)) AS changed
            """)[0].decode(Int.self, "changed")
    }

    /// The unsubscribe link of `messageID` was used: opts its contact out of the channel's kind.
    /// - Returns: nil when the message does not exist, else whether a row was inserted.
    public func recordLinkOptOut(messageID: Int64, on connection: PostgresConnection) async throws -> Bool? {
        try await connection.query("SELECT herald.record_link_opt_out(\(messageID)) AS inserted")[0].decode(Int?.self, "inserted").map { $0 > 0 }
    }

    /// Opt-outs by source (`admin` for the admin tool's NULL) and channel kind.
    public func optOutCounts(on connection: PostgresConnection) async throws -> [(source: String, kind: String, count: Int)] {
        try await connection.query("""
            SELECT coalesce(source, 'admin') AS source, channel_kind, count(*) AS opt_outs
            FROM herald.opt_outs GROUP BY 1, 2 ORDER BY 1, 2
            """).map { (try $0.decode(String.self, "source"), try $0.decode(String.self, "channel_kind"), try $0.decode(Int.self, "opt_outs")) }
    }

    /// Messages waiting for their channel's messaging tier, per broadcast.
    public func tierWaiting(on connection: PostgresConnection) async throws -> [Int64: Int] {
        var out: [Int64: Int] = [:]
        for r in try await connection.query("SELECT broadcast_id, waiting FROM herald.tier_waiting()") {
            out[try r.decode(Int64.self, "broadcast_id")] = try r.decode(Int.self, "waiting")
        }
        return out
    }
}

/// What `/metrics` shows of the consent loop, sampled from the database.
public struct ConsentSample: Sendable, Equatable {
    public struct OptOuts: Sendable, Equatable {
        /// `admin` (the admin tool), `keyword`, `provider` or `unsubscribe_link`.
        public var source: String
        public var kind: String
        public var count: Int
    }
    public var optOuts: [OptOuts]
    /// Messages waiting for the tier, per channel name, every channel with `daily_limit` included (0 too).
    public var tierWaiting: [String: Int]
}

extension ConsentStore {
    /// One sample for the metrics gauges (two small aggregate queries).
    public func sample(on connection: PostgresConnection) async throws -> ConsentSample {
        let optOuts = try await optOutCounts(on: connection).map { ConsentSample.OptOuts(source: $0.source, kind: $0.kind, count: $0.count) }
        var waiting: [String: Int] = [:]
        for r in try await connection.query("""
            SELECT ch.name, coalesce(sum(t.waiting), 0)::bigint AS waiting
            FROM herald.channels ch LEFT JOIN herald.tier_waiting() t ON t.channel_id = ch.id
            WHERE ch.settings ? 'daily_limit' OR t.channel_id IS NOT NULL
            GROUP BY ch.name
            """) {
            waiting[try r.decode(String.self, "name")] = try r.decode(Int.self, "waiting")
        }
        return ConsentSample(optOuts: optOuts, tierWaiting: waiting)
    }
}
