import HeraldStore

/// Printing `herald demo`'s report (its rows come from ``ReportStore/demoRows(_:on:)``).
public enum DemoReport {
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
