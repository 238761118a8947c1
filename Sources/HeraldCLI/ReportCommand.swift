import ArgumentParser
import Foundation
import HeraldCore
import HeraldDemo
import HeraldPostgres
import HeraldStore
import Logging

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print the delivery report in the terminal.",
        discussion: """
            Without an id: one line per broadcast, newest first. With an id: that broadcast's counts,
            each with its share of the recipients. The figures are those of the view
            herald.broadcast_report (see docs/reports.md). --json prints the same as JSON.
            """)

    @Argument(help: "A broadcast id; all broadcasts when omitted.") var id: Int64?
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Broadcasts listed at most (without an id).") var limit: Int = 50

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        let connection = await connectOrFail(applicationName: "herald-report", logger: quietLogger("herald.report"))
        let store = ReportStore()
        do {
            if let id {
                guard let report = try await store.broadcastReport(id: id, on: connection) else {
                    fail("no broadcast with id \(id)")
                }
                let tierWaiting = try await ConsentStore().tierWaiting(on: connection)[id] ?? 0
                print(json ? Self.json(report) : Self.detail(report, tierWaiting: tierWaiting))
            } else {
                let reports = try await store.broadcastReports(limit: limit, on: connection)
                print(json ? Self.json(reports) : Self.table(reports))
            }
        } catch {
            fail("cannot read the report: \(error)")
        }
        await connection.close()
    }

    // MARK: Output

    static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
    }

    static func table(_ reports: [BroadcastReport]) -> String {
        if reports.isEmpty { return "no broadcasts" }
        let header = ["ID", "NAME", "CHANNEL", "STATUS", "RECIPIENTS", "QUEUED", "SENDING", "SENT", "DELIVERED", "READ",
                      "FAILED", "SKIPPED", "CANCELLED"]
        let rows = reports.map { r in
            [String(r.broadcastID), clip(r.name, 28), clip(r.channel, 16), r.status, String(r.recipients), String(r.queued),
             String(r.sending), String(r.sent), String(r.delivered), String(r.read), String(r.failed), String(r.skipped),
             String(r.cancelled)]
        }
        // Text columns left-aligned, numbers right-aligned.
        return TextTable.render([header] + rows, rightAligned: Set([0] + Array(4..<header.count)), separatorAfter: [])
    }

    /// - Parameter tierWaiting: queued messages put off until the channel's messaging tier frees.
    static func detail(_ r: BroadcastReport, tierWaiting: Int = 0) -> String {
        func time(_ d: Date?) -> String {
            guard let d else { return "-" }
            let f = ISO8601DateFormatter()
            return f.string(from: d)
        }
        var lines = [
            "broadcast   \(r.broadcastID)  \(r.name)",
            "channel     \(r.channel)",
            "status      \(r.status)",
            "send_at     \(time(r.sendAt))",
            "started_at  \(time(r.startedAt))",
            "finished_at \(time(r.finishedAt))",
            "",
        ]
        let counts: [(String, Int)] = [("recipients", r.recipients), ("queued", r.queued), ("sending", r.sending),
                                       ("sent", r.sent), ("delivered", r.delivered), ("read", r.read),
                                       ("failed", r.failed), ("skipped", r.skipped), ("cancelled", r.cancelled)]
        let width = counts.map { String($0.1).count }.max() ?? 1
        for (name, n) in counts {
            let number = String(repeating: " ", count: width - String(n).count) + String(n)
            var text = name.padding(toLength: 11, withPad: " ", startingAt: 0) + " " + number
            if name != "recipients", r.recipients > 0 {
                text += String(format: "  %5.1f%%", Double(n) * 100 / Double(r.recipients))
            }
            lines.append(text)
            if name == MessageStatus.queued.rawValue, tierWaiting > 0 {
                lines.append("  of which \(tierWaiting) wait for the channel's messaging tier (daily_limit)")
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func clip(_ s: String, _ n: Int) -> String {
        s.count <= n ? s : String(s.prefix(n - 1)) + "…"
    }
}
