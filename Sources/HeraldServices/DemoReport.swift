import HeraldPostgres

/// One row of `herald.broadcast_report` (the contract's view), as `herald demo` reads and prints it.
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

/// Reading and printing `herald demo`'s report.
public enum DemoReport {
    /// The report rows of `ids`, in id order, in one query.
    public static func fetch(_ ids: [Int64], on connection: PostgresConnection) async throws -> [DemoReportRow] {
        let rows = try await connection.query("""
            SELECT broadcast_id, name, channel, status, recipients, queued, sending, sent, delivered, read, failed,
                   skipped, cancelled,
                   CASE WHEN send_at > now() THEN extract(epoch FROM send_at - now())::float8 END
            FROM herald.broadcast_report
            WHERE broadcast_id = ANY(\(ids)::bigint[])
            ORDER BY broadcast_id
            """)
        return try rows.map { r in
            DemoReportRow(broadcastID: try r.decode(Int64.self, at: 0), name: try r.decode(String.self, at: 1),
                          channel: try r.decode(String.self, at: 2), status: try r.decode(String.self, at: 3),
                          recipients: try r.decode(Int64.self, at: 4), queued: try r.decode(Int64.self, at: 5),
                          sending: try r.decode(Int64.self, at: 6), sent: try r.decode(Int64.self, at: 7),
                          delivered: try r.decode(Int64.self, at: 8), read: try r.decode(Int64.self, at: 9),
                          failed: try r.decode(Int64.self, at: 10), skipped: try r.decode(Int64.self, at: 11),
                          cancelled: try r.decode(Int64.self, at: 12), startsIn: try r.decode(Double?.self, at: 13))
        }
    }

    /// Skipped messages of `ids` by `skip_reason`, most frequent first.
    public static func skipReasons(_ ids: [Int64], on connection: PostgresConnection) async throws -> [(reason: String, count: Int64)] {
        let rows = try await connection.query("""
            SELECT coalesce(skip_reason, 'unknown'), count(*)
            FROM herald.message_status
            WHERE broadcast_id = ANY(\(ids)::bigint[]) AND status = 'skipped'
            GROUP BY 1 ORDER BY 2 DESC, 1
            """)
        return try rows.map { (try $0.decode(String.self, at: 0), try $0.decode(Int64.self, at: 1)) }
    }

    /// The final report as a table: one row per broadcast, numbers right-aligned.
    public static func table(_ rows: [DemoReportRow]) -> String {
        var cells: [[String]] = [["broadcast", "channel", "status", "recipients", "sent", "delivered", "read", "failed", "skipped", "cancelled"]]
        for r in rows {
            cells.append([r.name, r.channel, r.status] + [r.recipients, r.sent, r.delivered, r.read, r.failed, r.skipped, r.cancelled].map(grouped))
        }
        if rows.count > 1 {
            func total(_ k: KeyPath<DemoReportRow, Int64>) -> String { grouped(rows.reduce(0) { $0 + $1[keyPath: k] }) }
            cells.append(["total", "", "", total(\.recipients), total(\.sent), total(\.delivered), total(\.read),
                          total(\.failed), total(\.skipped), total(\.cancelled)])
        }
        return TextTable.render(cells, rightAligned: Set(3..<10), separatorAfter: rows.count > 1 ? [0, rows.count] : [0])
    }

    /// `12345` → `12,345`.
    public static func grouped(_ n: Int64) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return n < 0 ? "-" + out : out
    }
}

/// A plain-text table whose columns line up in a terminal, also with diacritics (combining marks
/// take no column) and Chinese characters (two columns each).
public enum TextTable {
    /// - Parameters:
    ///   - cells: rows of cells, the first one the header.
    ///   - rightAligned: the columns to align right (numbers).
    ///   - separatorAfter: row indexes after which a rule is drawn.
    public static func render(_ cells: [[String]], rightAligned: Set<Int> = [], separatorAfter: Set<Int> = [0]) -> String {
        let columns = cells.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in cells { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], displayWidth(cell)) } }
        var lines: [String] = []
        for (index, row) in cells.enumerated() {
            var parts: [String] = []
            for i in 0..<columns {
                let cell = i < row.count ? row[i] : ""
                let pad = String(repeating: " ", count: widths[i] - displayWidth(cell))
                parts.append(rightAligned.contains(i) ? pad + cell : cell + pad)
            }
            lines.append(trimTrailing(parts.joined(separator: "  ")))
            if separatorAfter.contains(index) {
                lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Terminal columns `s` takes: combining marks 0, East Asian wide characters 2, others 1.
    public static func displayWidth(_ s: some StringProtocol) -> Int {
        var width = 0
        for scalar in s.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .nonspacingMark, .enclosingMark, .format: continue
            default: break
            }
            let v = scalar.value
            let wide = (0x1100...0x115F).contains(v) || (0x2E80...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v)
                || (0xF900...0xFAFF).contains(v) || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v)
                || (0xFFE0...0xFFE6).contains(v) || (0x1F300...0x1F64F).contains(v) || (0x20000...0x3FFFD).contains(v)
            width += wide ? 2 : 1
        }
        return width
    }

    /// `s` cut to at most `width` columns (with `…` when cut), then padded with spaces to `width`.
    public static func fit(_ s: String, _ width: Int) -> String {
        if displayWidth(s) <= width { return s + String(repeating: " ", count: width - displayWidth(s)) }
        var out = ""
        var used = 0
        for ch in s {
            let w = displayWidth(String(ch))
            if used + w > width - 1 { break }
            out.append(ch)
            used += w
        }
        return out + "…" + String(repeating: " ", count: max(0, width - used - 1))
    }

    private static func trimTrailing(_ s: String) -> String {
        var s = s
        while s.last == " " { s.removeLast() }
        return s
    }
}
