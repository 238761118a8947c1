import Foundation
import HeraldPostgres

/// One row of `herald.broadcast_report` (the contract's columns).
public struct BroadcastReport: Sendable, Equatable, Codable {
    public var broadcastID: Int64
    public var name: String
    public var channel: String
    public var status: String
    public var sendAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    public var recipients: Int
    public var queued: Int
    public var sending: Int
    public var sent: Int
    public var delivered: Int
    public var read: Int
    public var failed: Int
    public var skipped: Int
    public var cancelled: Int

    enum CodingKeys: String, CodingKey {
        case broadcastID = "broadcast_id", name, channel, status, sendAt = "send_at", startedAt = "started_at"
        case finishedAt = "finished_at", recipients, queued, sending, sent, delivered, read, failed, skipped, cancelled
    }

    /// Like the view: every column, NULL ones as `null`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(broadcastID, forKey: .broadcastID)
        try c.encode(name, forKey: .name)
        try c.encode(channel, forKey: .channel)
        try c.encode(status, forKey: .status)
        try c.encode(sendAt, forKey: .sendAt)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(finishedAt, forKey: .finishedAt)
        for (key, value) in [(CodingKeys.recipients, recipients), (.queued, queued), (.sending, sending), (.sent, sent),
                             (.delivered, delivered), (.read, read), (.failed, failed), (.skipped, skipped), (.cancelled, cancelled)] {
            try c.encode(value, forKey: key)
        }
    }
}

/// Queue figures of one channel at one moment, for the `herald_queue_*` gauges.
public struct QueueDepth: Sendable, Equatable {
    public var channel: String
    /// Jobs still to do: due, backed off, or held by a worker.
    public var depth: Int
    /// Jobs due now and not held.
    public var due: Int
    /// Age in seconds of the oldest due job (0 when none is due).
    public var oldestDueAgeSeconds: Double
}

/// The report queries: what `herald report` prints, and what `/metrics` samples.
public struct ReportStore: Sendable {
    public init() {}

    static let columns = """
        broadcast_id, name, channel, status, send_at, started_at, finished_at, recipients, queued, sending,
        sent, delivered, read, failed, skipped, cancelled
        """

    /// Every broadcast's report, newest first, at most `limit`.
    public func broadcastReports(limit: Int = 100, on connection: PostgresConnection) async throws -> [BroadcastReport] {
        try await connection.query("""
            SELECT \(unescaped: Self.columns) FROM herald.broadcast_report ORDER BY broadcast_id DESC LIMIT \(limit)
            """).map(Self.report)
    }

    /// One broadcast's report, or nil when there is no such broadcast.
    public func broadcastReport(id: Int64, on connection: PostgresConnection) async throws -> BroadcastReport? {
        try await connection.query("""
            SELECT \(unescaped: Self.columns) FROM herald.broadcast_report WHERE broadcast_id = \(id)
            """).map(Self.report).first
    }

    private static func report(_ r: PostgresRow) throws -> BroadcastReport {
        BroadcastReport(
            broadcastID: try r.decode(Int64.self, at: 0), name: try r.decode(String.self, at: 1),
            channel: try r.decode(String.self, at: 2), status: try r.decode(String.self, at: 3),
            sendAt: try r.decode(Date?.self, at: 4), startedAt: try r.decode(Date?.self, at: 5),
            finishedAt: try r.decode(Date?.self, at: 6), recipients: try r.decode(Int.self, at: 7),
            queued: try r.decode(Int.self, at: 8), sending: try r.decode(Int.self, at: 9), sent: try r.decode(Int.self, at: 10),
            delivered: try r.decode(Int.self, at: 11), read: try r.decode(Int.self, at: 12), failed: try r.decode(Int.self, at: 13),
            skipped: try r.decode(Int.self, at: 14), cancelled: try r.decode(Int.self, at: 15))
    }

    /// Queue depth and the age of the oldest due job, per channel that has jobs.
    ///
    /// The jobs table holds only work still to do (finished jobs are deleted), so this is a scan of
    /// the backlog, not of history.
    public func queueDepths(on connection: PostgresConnection) async throws -> [QueueDepth] {
        try await connection.query("""
            SELECT c.name, q.depth, q.due, q.oldest
            FROM (
                SELECT j.channel_id, count(*) AS depth,
                       count(*) FILTER (WHERE j.run_at <= now()) AS due,
                       coalesce(extract(epoch FROM now() - min(j.run_at) FILTER (WHERE j.run_at <= now())), 0)::float8 AS oldest
                FROM herald.jobs j
                GROUP BY j.channel_id
            ) q
            JOIN herald.channels c ON c.id = q.channel_id
            ORDER BY c.name
            """).map { r in
            QueueDepth(channel: try r.decode(String.self, at: 0), depth: try r.decode(Int.self, at: 1),
                       due: try r.decode(Int.self, at: 2), oldestDueAgeSeconds: try r.decode(Double.self, at: 3))
        }
    }

    /// Folds `broadcast_counts` deltas (see migration 0005); safe to run anywhere, any time.
    /// - Returns: rows folded.
    @discardableResult
    public func compactCounts(on connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT herald.compact_broadcast_counts()")[0].decode(Int.self, at: 0)
    }

    /// Whether the database answers (`/healthz`).
    public func ping(on connection: PostgresConnection) async throws {
        _ = try await connection.query("SELECT 1")
    }
}
