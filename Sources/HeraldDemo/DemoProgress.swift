import Foundation
import HeraldCore
import HeraldPostgres
import HeraldStore
import Logging
import ServiceLifecycle
import Synchronization

/// Where `herald demo` writes its live progress.
public struct DemoTerminal: Sendable {
    /// A terminal: redraw in place (ANSI cursor-up) several times a second. Otherwise plain lines,
    /// every few seconds.
    public var isTTY: Bool
    /// The terminal's width: longer lines are cut, since a wrapped line breaks the redraw.
    public var columns: Int?
    public var write: @Sendable (String) -> Void

    public init(isTTY: Bool, columns: Int? = nil, write: @escaping @Sendable (String) -> Void) {
        self.isTTY = isTTY
        self.columns = columns
        self.write = write
    }

    /// Standard output (or standard error), a terminal when `isatty` says so.
    public static func standard(error: Bool = false) -> DemoTerminal {
        let fd = error ? STDERR_FILENO : STDOUT_FILENO
        let handle = error ? FileHandle.standardError : FileHandle.standardOutput
        var size = winsize()
        let columns = ioctl(fd, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : nil
        return DemoTerminal(isTTY: isatty(fd) == 1, columns: columns, write: { handle.write(Data($0.utf8)) })
    }
}

/// The demo's progress reporter: a ``Service`` that reads `herald.broadcast_report` (one query
/// per tick) and draws, per broadcast, its status, a bar, its counts and messages per second.
///
/// It returns once every broadcast it watches has reached `completed`, `failed` or `cancelled` and `settled` holds
/// (run it with `successTerminationBehavior: .gracefullyShutdownGroup`, so the other services
/// then stop gracefully); on graceful shutdown (SIGINT, SIGTERM) it returns at once; after
/// `timeout` it returns too (a graceful stop, not a cancellation: workers hand back what they
/// hold). ``outcome`` says which happened.
public final class DemoProgress: Service, Sendable {
    /// How the reporter ended.
    public enum Outcome: Sendable, Equatable {
        case running
        /// Every broadcast reached an end state.
        case finished
        /// Stopped early by a graceful shutdown.
        case interrupted
        /// The broadcasts did not finish within the timeout; the group was shut down gracefully.
        case timedOut
    }

    let connectionString: String?
    let broadcasts: [Int64]
    let terminal: DemoTerminal
    let workers: Int
    let timeout: Duration
    let settled: @Sendable ([DemoReportRow]) -> Bool
    let logger: Logger
    private let state = Mutex<(outcome: Outcome, drawnLines: Int)>((.running, 0))

    /// - Parameters:
    ///   - connectionString: the database.
    ///   - broadcasts: the broadcast ids to watch.
    ///   - terminal: where to draw.
    ///   - workers: shown in the header.
    ///   - timeout: how long the broadcasts may take.
    ///   - settled: once every broadcast is final, whether the rows are also done changing (the
    ///     demo waits for the sandbox's delivery receipts); the reporter keeps drawing until it is.
    public init(connectionString: String?, broadcasts: [Int64], terminal: DemoTerminal, workers: Int,
                timeout: Duration, settled: @escaping @Sendable ([DemoReportRow]) -> Bool = { _ in true }, logger: Logger) {
        self.connectionString = connectionString
        self.broadcasts = broadcasts
        self.terminal = terminal
        self.workers = workers
        self.timeout = timeout
        self.settled = settled
        self.logger = logger
    }

    /// How the reporter ended (`.running` while it runs).
    public var outcome: Outcome { state.withLock { $0.outcome } }

    public func run() async throws {
        let connection = try await PostgresConnection.connect(connectionString, applicationName: "herald-demo-progress", logger: logger)
        do {
            let outcome = try await cancelWhenGracefulShutdown { try await self.watch(connection) }
            state.withLock { $0.outcome = outcome }
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    /// Draws until every broadcast is final, the task is cancelled, or the timeout passes.
    private func watch(_ connection: PostgresConnection) async throws -> Outcome {
        let clock = ContinuousClock()
        let start = clock.now
        let interval: Duration = terminal.isTTY ? .milliseconds(250) : .seconds(2)
        var rates = RateWindow()
        var lastPlainDraw: ContinuousClock.Instant?
        while true {
            let rows: [DemoReportRow]
            do {
                rows = try await ReportStore().demoRows(broadcasts, on: connection)
            } catch where Task.isCancelled {
                return .interrupted
            }
            let now = clock.now
            rates.add(rows, at: now)
            let finished = !rows.isEmpty && rows.allSatisfy(\.isFinal) && settled(rows)
            // Plain output: a block every `interval`, and the last state once.
            if terminal.isTTY || finished || lastPlainDraw.map({ now - $0 >= interval }) ?? true {
                draw(rows, rates: rates, elapsed: now - start)
                lastPlainDraw = now
            }
            if finished { return .finished }
            if now - start > timeout { return .timedOut }
            do {
                try await Task.sleep(for: terminal.isTTY ? interval : .milliseconds(250))
            } catch {
                return .interrupted
            }
        }
    }

    private func draw(_ rows: [DemoReportRow], rates: RateWindow, elapsed: Duration) {
        let seconds = elapsed.inSeconds
        let total = rows.reduce(0) { $0 + $1.recipients }
        let done = rows.reduce(0) { $0 + $1.done }
        let header = String(format: "%6.1f s  ", seconds)
            + "\(DemoReport.grouped(done)) of \(DemoReport.grouped(total)) messages done  "
            + "\(DemoReport.grouped(Int64(rates.total.rounded())))/s  (\(workers) worker\(workers == 1 ? "" : "s"))"
        let compactHeader = String(format: "%6.1f s  ", seconds)
            + "\(DemoReport.grouped(done))/\(DemoReport.grouped(total)) done  "
            + "\(DemoReport.grouped(Int64(rates.total.rounded())))/s  (sent/failed/skipped)"
        var lines = [header]
        // Narrow terminal: a shorter bar, then shorter names, before anything is cut.
        let longest = min(36, rows.map { TextTable.displayWidth($0.name) }.max() ?? 10)
        var layouts = [(longest, 20, false), (longest, 10, false)]
        for name in stride(from: longest, through: 12, by: -4) { layouts.append((name, 10, true)) }
        var chosen: [String] = []
        for (nameWidth, barWidth, compact) in layouts {
            chosen = rows.map {
                Self.line($0, nameWidth: nameWidth, barWidth: barWidth, compact: compact,
                          rate: rates.rate(of: $0.broadcastID), fancy: terminal.isTTY)
            }
            lines[0] = compact ? compactHeader : header
            guard let columns = terminal.columns else { break }
            if chosen.allSatisfy({ TextTable.displayWidth($0) < columns }) { break }
        }
        lines += chosen
        var text = ""
        if terminal.isTTY {
            let previous = state.withLock { s -> Int in
                defer { s.drawnLines = lines.count }
                return s.drawnLines
            }
            if previous > 0 { text += "\u{1B}[\(previous)A" }
            for line in lines {
                let cut = terminal.columns.map { TextTable.displayWidth(line) >= $0 ? TextTable.fit(line, $0 - 1) : line } ?? line
                text += "\r\u{1B}[2K" + cut + "\n"
            }
        } else {
            text = lines.joined(separator: "\n") + "\n\n"
        }
        terminal.write(text)
    }

    /// One broadcast: name, status, bar, percentage, counts, rate.
    static func line(_ row: DemoReportRow, nameWidth: Int, barWidth width: Int, compact: Bool, rate: Double, fancy: Bool) -> String {
        let fraction = row.recipients > 0 ? Double(row.done) / Double(row.recipients) : 0
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = fancy
            ? String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            : String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var status = row.status
        if row.status == BroadcastStatus.scheduled.rawValue, let startsIn = row.startsIn { status = String(format: "due in %.0f s", startsIn.rounded(.up)) }
        let sent = DemoReport.grouped(row.sent + row.delivered + row.read)
        let counts = compact
            ? "\(sent)/\(DemoReport.grouped(row.failed))/\(DemoReport.grouped(row.skipped))"
            : "sent \(sent), failed \(DemoReport.grouped(row.failed)), skipped \(DemoReport.grouped(row.skipped))"
        let percent = row.recipients > 0 ? String(format: "%3.0f%%", fraction * 100) : "   -"
        return "  \(TextTable.fit(row.name, nameWidth))  \(TextTable.fit(status, 12))  \(fancy ? bar : "[" + bar + "]") \(percent)  \(counts)" + (row.isFinal ? "" : "  \(DemoReport.grouped(Int64(rate.rounded())))/s")
    }
}

/// Messages handed to providers per second, over the last two seconds of samples.
struct RateWindow {
    private var samples: [(at: ContinuousClock.Instant, handled: [Int64: Int64])] = []

    mutating func add(_ rows: [DemoReportRow], at instant: ContinuousClock.Instant) {
        samples.append((instant, Dictionary(rows.map { ($0.broadcastID, $0.handled) }, uniquingKeysWith: { a, _ in a })))
        while let first = samples.first, samples.count > 2, instant - first.at > .seconds(2) { samples.removeFirst() }
    }

    func rate(of id: Int64) -> Double {
        guard let first = samples.first, let last = samples.last, last.at > first.at else { return 0 }
        let span = last.at - first.at
        let seconds = span.inSeconds
        return Double((last.handled[id] ?? 0) - (first.handled[id] ?? 0)) / seconds
    }

    var total: Double {
        guard let last = samples.last else { return 0 }
        return last.handled.keys.reduce(0) { $0 + rate(of: $1) }
    }
}
