import ArgumentParser
import Foundation
import HeraldPostgres
import HeraldServices
import Logging

struct Preview: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Dry-run a broadcast (drafts included) without changing anything.",
        discussion: """
            Validation errors as the scheduler would write them, audience size, skips by reason, SMS
            segments (GSM-7 / UCS-2), estimated cost (channel settings price_per_message,
            price_per_segment), estimated duration at the channel's rate, daily_limit and send
            windows, and N rendered samples plus the longest message. Runs in a READ ONLY
            transaction. --json prints the shape documented in docs/preview.md.
            """)

    @Argument(help: "The broadcast id.") var id: Int64
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(help: "Rendered sample messages to show (the first contacts).") var samples: Int = 3

    func validate() throws {
        guard samples >= 0 else { throw ValidationError("--samples must be 0 or more") }
    }

    func run() async throws {
        let connection = await connectOrFail(applicationName: "herald-preview", logger: quietLogger("herald.preview"))
        let preview: BroadcastPreview?
        do {
            preview = try await PreviewService.preview(id, samples: samples, on: connection)
        } catch {
            fail("cannot preview broadcast \(id): \(error)")
        }
        await connection.close()
        guard let preview else { fail("no broadcast with id \(id)") }
        print(json ? Report.json(preview) : Self.text(preview))
    }

    static func text(_ p: BroadcastPreview) -> String {
        let time = ISO8601DateFormatter()
        var lines = ["broadcast   \(p.broadcastID)  \(p.name)  (\(p.status))",
                     "channel     \(p.channel ?? "-") (\(p.kind ?? "-"))"]
        for e in p.errors { lines.append("ERROR       \(e)") }
        for w in p.warnings { lines.append("warning     \(w)") }
        lines.append("audience    \(p.audience)")
        lines.append("eligible    \(p.eligible)")
        for reason in p.skipped.keys.sorted() { lines.append("skipped     \(reason): \(p.skipped[reason] ?? 0)") }
        if let s = p.sms {
            lines.append("segments    \(s.segments)  (GSM-7: \(s.gsm7Messages) messages, \(s.gsm7Segments) segments; UCS-2: \(s.ucs2Messages) messages, \(s.ucs2Segments) segments)")
        }
        if let c = p.cost { lines.append("cost        \(String(format: "%.4f", c.total))") }
        let t = p.timing
        lines.append("rate        \(t.ratePerSecond.map { "\($0)/s" } ?? "-")\(t.dailyLimit.map { ", daily_limit \($0)" } ?? "")")
        if let w = t.sendWindow { lines.append("window      \(w) (\(t.heldByWindow) messages wait for it)") }
        if t.localSendAt { lines.append("local time  send_at read in each recipient's zone (default \(t.timeZone))") }
        lines.append("first send  \(t.firstSendAt.map { time.string(from: $0) } ?? "-")")
        lines.append("last send   \(t.lastSendAt.map { time.string(from: $0) } ?? "-")")
        lines.append("duration    \(t.estimatedDurationSeconds.map { String(format: "%.1f s", $0) } ?? "-")")
        for s in p.samples + (p.longest.map { [$0] } ?? []) {
            let label = s == p.longest ? "longest" : "sample"
            let extra = s.segments.map { " [\($0) segment(s), \(s.encoding ?? "")]" } ?? ""
            lines.append("\(label.padding(toLength: 11, withPad: " ", startingAt: 0)) #\(s.contactID) \(s.address ?? "-")\(extra)")
            if let subject = s.subject { lines.append("              Subject: \(subject)") }
            lines.append("              \(s.text.replacingOccurrences(of: "\n", with: "\n              "))")
        }
        return lines.joined(separator: "\n")
    }
}
