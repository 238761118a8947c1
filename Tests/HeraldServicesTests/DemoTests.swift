import Foundation
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldDemo
import HeraldTesting
import Testing

/// `herald demo` end to end, as a newcomer runs it: the binary, a private PostgreSQL or the test
/// database, the JSON report checked against the database, and nothing left behind.
@Suite("Demo")
struct DemoTests {
    /// `herald demo --json`'s output.
    struct Report: Decodable {
        var database: String
        var outcome: String
        var broadcasts: [DemoReportRow]
        var skip_reasons: [String: Int64]
        var receipts: Receipts

        /// The sandbox's receipts that `herald webhooks` accepted.
        struct Receipts: Decodable {
            var delivered: Int
            var read: Int
            var failed: Int
            var refused: Int
        }
    }

    /// The binary under test; `scripts/test` sets HERALD_BIN. Fails loudly without it.
    static func binary() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["HERALD_BIN"], !path.isEmpty else {
            Issue.record("HERALD_BIN is not set: run the tests with scripts/test")
            throw TimedOut(what: "HERALD_BIN is set")
        }
        return path
    }

    /// Starts `herald demo` without DATABASE_URL or PG* variables: it must make its own database.
    static func startPrivate(_ arguments: [String], postgresBin: String? = nil) throws -> HeraldProcess {
        var env = ProcessInfo.processInfo.environment
        for key in env.keys where key == "DATABASE_URL" || key.hasPrefix("PG") { env[key] = nil }
        if let postgresBin { env["HERALD_POSTGRES_BIN"] = postgresBin }
        return try HeraldProcess.start(try binary(), ["demo"] + arguments, exactEnvironment: env)
    }

    /// A `HERALD_POSTGRES_BIN` whose `initdb` blocks opening the FIFO `gate` in the returned
    /// folder (no polling: `open` waits for a writer) and whose `pg_ctl` is the real one: a demo
    /// started with it stays in "PostgreSQL starts" until it is signalled. ``openGate(_:)``
    /// releases a wrapper still blocked, which then exits without running initdb.
    static func gatedPostgresBin() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = try FileManager.default.contentsOfDirectory(atPath: root)
            .sorted { $0.compare($1, options: .numeric) == .orderedDescending }
        let real = try #require(versions.map { "\(root)/\($0)/bin" }.first {
            FileManager.default.isExecutableFile(atPath: "\($0)/initdb")
        }, "no PostgreSQL server binaries under \(root)")
        let dir = NSTemporaryDirectory() + "herald-gated-pg-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        guard mkfifo(dir + "/gate", 0o666) == 0 else {
            throw TimedOut(what: "mkfifo \(dir)/gate: \(String(cString: strerror(errno)))")
        }
        _ = chmod(dir + "/gate", 0o666)  // the wrapper runs as `postgres` when the tests run as root
        // `read` meets end-of-file when the gate is opened and closed without data: exit, never initdb.
        let initdb = """
            #!/bin/sh
            read -r line < '\(dir)/gate' || exit 1
            exec '\(real)/initdb' "$@"
            """
        FileManager.default.createFile(atPath: dir + "/initdb", contents: Data(initdb.utf8), attributes: [.posixPermissions: 0o755])
        try FileManager.default.createSymbolicLink(atPath: dir + "/pg_ctl", withDestinationPath: real + "/pg_ctl")
        return dir
    }

    /// Opens and closes the gate's writing end, so a wrapper still blocked on it ends (when
    /// none waits, the non-blocking open fails with ENXIO and nothing happens).
    static func openGate(_ dir: String) {
        let fd = open(dir + "/gate", O_WRONLY | O_NONBLOCK)
        if fd >= 0 { close(fd) }
    }

    static let small = ["--contacts", "300", "--workers", "2", "--json", "--timeout", "120"]

    @Test("without DATABASE_URL: a private PostgreSQL, every broadcast completed, nothing left behind")
    func privateCluster() async throws {
        let demo = try Self.startPrivate(Self.small)
        let status = await demo.wait()
        #expect(status == 0, "stderr: \(demo.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: Data(demo.stdout.utf8))
        #expect(report.database == "private")
        #expect(report.outcome == "finished")
        Self.expectComplete(report)
        let directory = try #require(Self.directory(in: demo.stderr), "stderr names the directory: \(demo.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory), "\(directory) was removed")
        #expect(Self.processes(mentioning: directory).isEmpty, "no process of \(directory) is left")
    }

    @Test("with DATABASE_URL: the printed report is the database's broadcast_report; a second run does not clash")
    func givenDatabase() async throws {
        try await withTestDatabase { db in
            var seen: Set<Int64> = []
            for run in 1...2 {
                let demo = try HeraldProcess.start(try Self.binary(), ["demo"] + Self.small, databaseURL: db.url)
                let status = await demo.wait()
                #expect(status == 0, "run \(run) stderr: \(demo.stderr)")
                #expect(demo.stderr.contains("using the database in DATABASE_URL"))
                let report = try JSONDecoder().decode(Report.self, from: Data(demo.stdout.utf8))
                #expect(report.database == "DATABASE_URL")
                Self.expectComplete(report)

                let ids = report.broadcasts.map(\.broadcastID)
                #expect(seen.isDisjoint(with: ids), "each run makes broadcasts of its own")
                seen.formUnion(ids)
                let c = try await db.connect()
                let rows = try await c.query("""
                    SELECT broadcast_id, name, channel, status, recipients, queued, sending, sent, delivered, read,
                           failed, skipped, cancelled
                    FROM herald.broadcast_report WHERE broadcast_id = ANY(\(ids)::bigint[]) ORDER BY broadcast_id
                    """)
                let skipped = try await c.query("""
                    SELECT skip_reason, count(*) FROM herald.message_status
                    WHERE broadcast_id = ANY(\(ids)::bigint[]) AND status = 'skipped' GROUP BY 1
                    """)
                await c.close()
                #expect(rows.count == report.broadcasts.count)
                for (row, printed) in zip(rows, report.broadcasts) {
                    let inDatabase = DemoReportRow(
                        broadcastID: try row.decode(Int64.self, at: 0), name: try row.decode(String.self, at: 1),
                        channel: try row.decode(String.self, at: 2), status: try row.decode(String.self, at: 3),
                        recipients: try row.decode(Int64.self, at: 4), queued: try row.decode(Int64.self, at: 5),
                        sending: try row.decode(Int64.self, at: 6), sent: try row.decode(Int64.self, at: 7),
                        delivered: try row.decode(Int64.self, at: 8), read: try row.decode(Int64.self, at: 9),
                        failed: try row.decode(Int64.self, at: 10), skipped: try row.decode(Int64.self, at: 11),
                        cancelled: try row.decode(Int64.self, at: 12))
                    #expect(printed == inDatabase)
                }
                var reasons: [String: Int64] = [:]
                for r in skipped { reasons[try r.decode(String.self, at: 0)] = try r.decode(Int64.self, at: 1) }
                #expect(reasons == report.skip_reasons)
            }
        }
    }

    @Test("Ctrl-C while sending: stops early, prints the report so far, exits 0, leaves nothing behind")
    func interrupted() async throws {
        let demo = try Self.startPrivate(["--contacts", "3000", "--workers", "1", "--json", "--timeout", "120"])
        try await Self.waitUntil("the services run") { demo.stderr.contains("running a scheduler") }
        // Any moment of the run is "while sending" and every assertion below holds at any of
        // them; half a second lets the first sends go out, so the report has something in it.
        try await Task.sleep(for: .milliseconds(500))
        demo.signal(SIGINT)
        let status = await demo.wait()
        #expect(status == 0, "stderr: \(demo.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: Data(demo.stdout.utf8))
        #expect(report.outcome == "interrupted")
        let directory = try #require(Self.directory(in: demo.stderr))
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(Self.processes(mentioning: directory).isEmpty)
    }

    @Test("SIGINT while PostgreSQL starts, and SIGKILL while sending: nothing left behind either way")
    func killed() async throws {
        // initdb waits for a gate the test never opens: the signal lands while PostgreSQL
        // starts, however slowly the test gets to send it.
        let gated = try Self.gatedPostgresBin()
        defer {
            Self.openGate(gated)
            try? FileManager.default.removeItem(atPath: gated)
        }
        let early = try Self.startPrivate(Self.small, postgresBin: gated)
        try await Self.waitUntil("the cluster is being made") { Self.directory(in: early.stderr) != nil }
        early.signal(SIGINT)
        let status = await early.wait()
        #expect(status != 0)
        let earlyDirectory = try #require(Self.directory(in: early.stderr))

        let demo = try Self.startPrivate(Self.small)
        try await Self.waitUntil("the services run") { demo.stderr.contains("running a scheduler") }
        demo.signal(SIGKILL)
        _ = await demo.wait()
        let directory = try #require(Self.directory(in: demo.stderr))
        // The watchdog notices within a second or so that herald is gone.
        for dir in [earlyDirectory, directory] {
            try await Self.waitUntil("\(dir) is cleaned up", timeout: .seconds(15)) {
                !FileManager.default.fileExists(atPath: dir) && Self.processes(mentioning: dir).isEmpty
            }
        }
    }

    @Test("table cells line up with diacritics and Chinese characters")
    func displayWidth() {
        #expect(TextTable.displayWidth("Ọ̀ṣúntókun") == 9)
        #expect(TextTable.displayWidth("王秀英") == 6)
        #expect(TextTable.displayWidth("Adéwálé") == 7)
        let table = TextTable.render([["name", "n"], ["王秀英", "1"], ["Ọ̀ṣun", "22"]], rightAligned: [1])
        let widths = table.split(separator: "\n").map { TextTable.displayWidth($0) }
        #expect(Set(widths).count == 1, "\(table)")
        #expect(DemoReport.grouped(1_234_567) == "1,234,567")
        #expect(DemoReport.grouped(999) == "999")
    }

    // MARK: - Helpers

    static func expectComplete(_ report: Report) {
        #expect(report.broadcasts.count == 5)
        #expect(report.broadcasts.contains { $0.name.hasPrefix("New lookbook · WhatsApp image template") })
        for b in report.broadcasts {
            #expect(b.status == "completed", "\(b.name): \(b.status)")
            #expect(b.recipients > 0, "\(b.name) reached someone")
            #expect(b.queued == 0 && b.sending == 0, "\(b.name): nothing left to send")
            #expect(b.recipients == b.queued + b.sending + b.sent + b.delivered + b.read + b.failed + b.skipped + b.cancelled,
                    "\(b.name): every recipient is accounted for")
            // The funnel: the sandbox's signed receipts went through herald webhooks and were applied.
            #expect(b.sent == 0, "\(b.name): every accepted message has its receipt")
            #expect(b.delivered > 0 && b.read > 0, "\(b.name): delivered \(b.delivered), read \(b.read)")
        }
        #expect(report.receipts.refused == 0)
        #expect(report.receipts.read == Int(report.broadcasts.reduce(0) { $0 + $1.read }))
    }

    /// The private cluster's directory, as `herald demo` names it on stderr.
    static func directory(in stderr: String) -> String? {
        guard let range = stderr.range(of: #"/tmp/herald-demo-[A-Za-z0-9]{6}"#, options: .regularExpression) else { return nil }
        return String(stderr[range])
    }

    /// Processes whose command line mentions `text` (the server's names its data directory).
    static func processes(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { $0.allSatisfy(\.isNumber) }.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }

    struct TimedOut: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting until \(what)" }
    }

    static func waitUntil(_ what: String, timeout: Duration = .seconds(60),
                          _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TimedOut(what: what)
    }

}
