import Foundation
import HeraldCore
import HeraldPostgres

/// One row of `herald.broadcast_report` (the contract's columns). Encoded like the view: every
/// column, NULL ones as `null`.
public struct BroadcastReport: Sendable, Equatable, Codable {
    public var broadcastID: Int64
    public var name: String
    public var channel: String
    public var status: String
    @EncodedAsNull public var sendAt: Date? = nil
    @EncodedAsNull public var startedAt: Date? = nil
    @EncodedAsNull public var finishedAt: Date? = nil
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
}

/// One row of `herald.broadcast_report` (the contract's view), with what `herald demo` shows beside it.
public struct DemoReportRow: Sendable, Codable, Equatable {
    public var broadcastID: Int64
    public var name: String
    public var channel: String
    public var status: String
    public var recipients: Int64
    public var queued: Int64
    public var sending: Int64
    public var sent: Int64
    public var delivered: Int64
    public var read: Int64
    public var failed: Int64
    public var skipped: Int64
    public var cancelled: Int64
    /// Seconds until `send_at` when it is in the future (not part of the JSON report).
    public var startsIn: Double?

    public init(broadcastID: Int64, name: String, channel: String, status: String, recipients: Int64, queued: Int64,
                sending: Int64, sent: Int64, delivered: Int64, read: Int64, failed: Int64, skipped: Int64, cancelled: Int64,
                startsIn: Double? = nil) {
        self.broadcastID = broadcastID
        self.name = name
        self.channel = channel
        self.status = status
        self.recipients = recipients
        self.queued = queued
        self.sending = sending
        self.sent = sent
        self.delivered = delivered
        self.read = read
        self.failed = failed
        self.skipped = skipped
        self.cancelled = cancelled
        self.startsIn = startsIn
    }

    enum CodingKeys: String, CodingKey {
        case broadcastID = "broadcast_id"
        case name, channel, status, recipients, queued, sending, sent, delivered, read, failed, skipped, cancelled
    }

    /// Messages that reached an end state or left the provider: everything but queued and sending.
    public var done: Int64 { sent + delivered + read + failed + skipped + cancelled }
    /// Messages handed to the provider (accepted or failed): what "messages per second" counts.
    public var handled: Int64 { sent + delivered + read + failed }
    /// The broadcast reached an end state of its own life cycle.
    public var isFinal: Bool { ["completed", "failed", "cancelled"].contains(status) }
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
            broadcastID: try r.decode(Int64.self, "broadcast_id"), name: try r.decode(String.self, "name"),
            channel: try r.decode(String.self, "channel"), status: try r.decode(String.self, "status"),
            sendAt: try r.decode(Date?.self, "send_at"), startedAt: try r.decode(Date?.self, "started_at"),
            finishedAt: try r.decode(Date?.self, "finished_at"), recipients: try r.decode(Int.self, "recipients"),
            queued: try r.decode(Int.self, "queued"), sending: try r.decode(Int.self, "sending"), sent: try r.decode(Int.self, "sent"),
            delivered: try r.decode(Int.self, "delivered"), read: try r.decode(Int.self, "read"),
            failed: try r.decode(Int.self, "failed"), skipped: try r.decode(Int.self, "skipped"),
            cancelled: try r.decode(Int.self, "cancelled"))
    }

    // MARK: herald demo

    /// The report rows of `ids`, in id order, in one query.
    public func demoRows(_ ids: [Int64], on connection: PostgresConnection) async throws -> [DemoReportRow] {
        let rows = try await connection.query("""
            SELECT broadcast_id, name, channel, status, recipients, queued, sending, sent, delivered, read, failed,
                   skipped, cancelled,
                   CASE WHEN send_at > now() THEN extract(epoch FROM send_at - now())::float8 END AS starts_in
            FROM herald.broadcast_report
            WHERE broadcast_id = ANY(\(ids)::bigint[])
            ORDER BY broadcast_id
            """)
        return try rows.map { r in
            DemoReportRow(broadcastID: try r.decode(Int64.self, "broadcast_id"), name: try r.decode(String.self, "name"),
                          channel: try r.decode(String.self, "channel"), status: try r.decode(String.self, "status"),
                          recipients: try r.decode(Int64.self, "recipients"), queued: try r.decode(Int64.self, "queued"),
                          sending: try r.decode(Int64.self, "sending"), sent: try r.decode(Int64.self, "sent"),
                          delivered: try r.decode(Int64.self, "delivered"), read: try r.decode(Int64.self, "read"),
                          failed: try r.decode(Int64.self, "failed"), skipped: try r.decode(Int64.self, "skipped"),
                          cancelled: try r.decode(Int64.self, "cancelled"), startsIn: try r.decode(Double?.self, "starts_in"))
        }
    }

    /// Skipped messages of `ids` by `skip_reason`, most frequent first.
    public func skipReasons(_ ids: [Int64], on connection: PostgresConnection) async throws -> [(reason: String, count: Int64)] {
        let rows = try await connection.query("""
            SELECT coalesce(skip_reason, 'unknown') AS reason, count(*) AS messages
            FROM herald.message_status
            WHERE broadcast_id = ANY(\(ids)::bigint[]) AND status = 'skipped'
            GROUP BY 1 ORDER BY 2 DESC, 1
            """)
        return try rows.map { (try $0.decode(String.self, "reason"), try $0.decode(Int64.self, "messages")) }
    }

    /// Folds `broadcast_counts` deltas (see migration 0005); safe to run anywhere, any time.
    /// - Returns: rows folded.
    @discardableResult
    public func compactCounts(on connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT herald.compact_broadcast_counts() AS folded")[0].decode(Int.self, "folded")
    }

    /// Whether the database answers (`/healthz`).
    public func ping(on connection: PostgresConnection) async throws {
        _ = try await connection.query("SELECT 1")
    }
}
