import ArgumentParser
import Dispatch
import Foundation
import HeraldCore
import HeraldDemo
import HeraldPostgres
import HeraldProviders
import HeraldServices
import HeraldStore
import HeraldTransport
import Logging
import ServiceLifecycle
import Synchronization

/// `herald demo`: wiring only. The audience is ``DemoSeed``'s, the progress ``DemoProgress``'s,
/// the throwaway database ``PrivateCluster``'s.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole system on a private, throwaway PostgreSQL and the sandbox provider.",
        discussion: """
            Without DATABASE_URL, starts a private PostgreSQL in a temporary directory (initdb and \
            pg_ctl from /usr/lib/postgresql, on a free port, as the `postgres` OS user when run as \
            root), and stops and removes it on exit, also on Ctrl-C and on errors. With \
            DATABASE_URL, uses that database instead: migrates it and adds the demo's rows, with a \
            run tag in channel and group names so that runs do not clash; the rows stay.

            Then, as the admin tool would, it writes --contacts contacts (Yorùbá, Igbo, Hausa, \
            English, French, Spanish and Chinese names; groups; opt-outs; a few invalid numbers \
            and emails), three channels on the sandbox provider (no network: 20 ms per send, 1% \
            fail), two approved WhatsApp templates and five broadcasts: a WhatsApp template, a \
            WhatsApp template with an image header (media by a personalized link), an SMS, an \
            email, and a WhatsApp message scheduled 5 s ahead. A scheduler, --workers workers \
            and `herald webhooks` (on 127.0.0.1, --webhooks-port) run in this process. The sandbox \
            then sends delivery receipts as Meta does, to POST /webhooks/whatsapp signed with \
            X-Hub-Signature-256 and the channels' app secret (a random one per run): every \
            accepted message is delivered, a share of them read a second later, a few fail \
            (--receipt-seed decides which). Progress is drawn per broadcast until all have \
            completed and their receipts are applied, then the final report \
            (herald.broadcast_report) is printed.

            Exits 0 when done, also after Ctrl-C or SIGTERM while sending (the report so far is \
            printed); otherwise one line on stderr and a non-zero status.
            """)

    @Option(help: "Contacts to create.") var contacts: Int = 20_000
    @Option(help: "Workers to run (in this process; each claims and sends on its own).") var workers: Int = 3
    @Flag(help: "Print the final report as JSON on stdout; progress goes to stderr.") var json = false
    @Option(help: "Seconds the broadcasts may take before the demo gives up.") var timeout: Int = 300
    @Option(help: "Port of the in-process `herald webhooks` (0: any free port).") var webhooksPort: Int = 0
    @Option(help: "Seed deciding which messages the sandbox's receipts say were read or failed.")
    var receiptSeed: UInt64 = 2026
    @Option(help: "Log level of the services (their messages go to stderr).")
    var logLevel: Logger.Level = .warning

    func validate() throws {
        guard contacts >= 1, contacts <= 5_000_000 else { throw ValidationError("--contacts must be between 1 and 5000000") }
        guard workers >= 1, workers <= 64 else { throw ValidationError("--workers must be between 1 and 64") }
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        guard (0...65_535).contains(webhooksPort) else { throw ValidationError("--webhooks-port must be between 0 and 65535") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "herald.demo")
        logger.logLevel = logLevel
        let interrupts = DemoInterrupts()

        var cluster: PrivateCluster?
        if PostgresConnection.environmentConnectionString == nil {
            do {
                cluster = try PrivateCluster(prefix: "herald-demo", logger: logger)
            } catch {
                fail("\(error)")
            }
            interrupts.cluster = cluster
        }
        do {
            try await demo(cluster: cluster, interrupts: interrupts, logger: logger)
        } catch {
            interrupts.setupDone()
            cluster?.stop()
            fail(Self.describe(error))
        }
        interrupts.setupDone()
        if let cluster {
            cluster.stop()
            say("stopped the private PostgreSQL and removed \(cluster.directory)")
        }
    }

    private func demo(cluster: PrivateCluster?, interrupts: DemoInterrupts, logger: Logger) async throws {
        let clock = ContinuousClock()
        let url: String?
        let connection: PostgresConnection
        if let cluster {
            say("starting a private PostgreSQL in \(cluster.directory) (removed on exit)")
            url = try await cluster.start()
            connection = try await PostgresConnection.connect(url, applicationName: "herald-demo", logger: logger)
            let version = try await connection.query("SHOW server_version")[0].decode(String.self, "server_version")
            say("PostgreSQL \(version) is up on 127.0.0.1:\(cluster.port ?? 0) and a socket in that directory")
        } else {
            url = PostgresConnection.environmentConnectionString
            do {
                connection = try await PostgresConnection.connect(url, applicationName: "herald-demo", logger: logger)
            } catch {
                throw DemoFailure("cannot connect to the database in DATABASE_URL: \(error)")
            }
            let row = try await connection.query("""
                SELECT current_database() AS database, coalesce(inet_server_addr()::text, 'local socket') AS host,
                       current_setting('port') AS port
                """)[0]
            say("using the database in DATABASE_URL: \(try row.decode(String.self, "database")) on \(try row.decode(String.self, "host")), port \(try row.decode(String.self, "port")); the demo's rows stay there")
        }
        do {
            try await exercise(on: connection, url: url, cluster: cluster, interrupts: interrupts, clock: clock, logger: logger)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    private func exercise(on connection: PostgresConnection, url: String?, cluster: PrivateCluster?, interrupts: DemoInterrupts,
                     clock: ContinuousClock, logger: Logger) async throws {
        let applied = try await Migrator(logger: logger).migrate(on: connection)
        say(applied.isEmpty ? "the schema is up to date" : "migrated the schema (\(applied.count) migrations)")

        // A fresh private database needs no tag; a shared one does (unique channel and group names).
        let tag = cluster == nil ? "demo-" + String(UInt32.random(in: 0...UInt32.max) % 1_679_616, radix: 36) : nil
        let seedStart = clock.now
        var seedOptions = DemoSeed.Options(contacts: contacts, tag: tag)
        seedOptions.receiptsSecretEnv = Self.receiptsSecretEnv
        let seeded = try await DemoSeed.seed(seedOptions, on: connection)
        let floor = try await SandboxStore().highestMessageID(on: connection)
        say("seeded \(DemoReport.grouped(Int64(seeded.contacts))) contacts, \(seeded.groups.count) groups ("
            + seeded.groups.map { "\($0.name) \(DemoReport.grouped(Int64($0.members)))" }.joined(separator: ", ")
            + "), 3 sandbox channels and \(seeded.broadcasts.count) broadcasts in \(Self.seconds(clock.now - seedStart))")

        // The system: one scheduler, the workers, and the reporter, which ends the group when done.
        let scheduler = SchedulerService(configuration: SchedulerConfiguration(connectionString: url), logger: logger)
        let workerServices = (1...workers).map { i in
            var config = WorkerConfiguration(databaseURL: url, workerID: WorkerConfiguration.defaultWorkerID() + "-demo\(i)")
            config.shutdownGrace = .seconds(5)
            return HeraldServices.Worker(configuration: config, logger: logger)
        }
        let receipts = sandboxReceipts(url: url, channels: seeded.channels, floor: floor, logger: logger)
        defer { receipts.transport.shutdown() }
        let emitter = receipts.emitter
        // Done when every broadcast is final and every accepted message has its receipts.
        let progress = DemoProgress(connectionString: url, broadcasts: seeded.broadcasts,
                                    terminal: json ? .standard(error: true) : .standard(),
                                    workers: workers, timeout: .seconds(timeout),
                                    settled: { rows in rows.allSatisfy { $0.sent == 0 } && emitter.isIdle }, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: receipts.webhooks), .init(service: scheduler)]
        services += workerServices.map { .init(service: $0) }
        services.append(.init(service: receipts.emitter))
        services.append(.init(service: progress, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        say("running a scheduler, \(workers) worker\(workers == 1 ? "" : "s"), herald webhooks and the sandbox's receipts; Ctrl-C stops early")
        let runStart = clock.now
        interrupts.serviceGroupStarts()
        try await group.run()
        interrupts.setupDone()
        let elapsed = clock.now - runStart
        let tally = emitter.tally

        let rows = try await ReportStore().demoRows(seeded.broadcasts, on: connection)
        let reasons = try await ReportStore().skipReasons(seeded.broadcasts, on: connection)
        switch progress.outcome {
        case .interrupted: say("interrupted: the broadcasts stopped where they were")
        case .timedOut: say("timed out after \(timeout) s: the broadcasts stopped where they were")
        case .finished, .running: break
        }
        if json {
            let report = DemoJSONReport(
                database: cluster == nil ? "DATABASE_URL" : "private", outcome: "\(progress.outcome)",
                contacts: seeded.contacts, workers: workers, elapsedSeconds: elapsed.inSeconds,
                broadcasts: rows, skipReasons: Dictionary(reasons.map { ($0.reason, $0.count) }, uniquingKeysWith: +),
                receipts: tally, receiptSeed: receiptSeed)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(report) + Data("\n".utf8))
        } else {
            let handled = rows.reduce(0) { $0 + $1.handled }
            let total = rows.reduce(0) { $0 + $1.recipients }
            var text = "\n" + DemoReport.table(rows) + "\n\n"
            if !reasons.isEmpty {
                text += "skipped: " + reasons.map { "\(DemoReport.grouped($0.count)) \($0.reason)" }.joined(separator: ", ") + "\n"
            }
            let rate = Double(handled) / max(elapsed.inSeconds, 0.001)
            text += "\(DemoReport.grouped(total)) messages to \(DemoReport.grouped(Int64(seeded.contacts))) contacts in "
                + "\(Self.seconds(elapsed)) with \(workers) worker\(workers == 1 ? "" : "s"): "
                + "\(DemoReport.grouped(handled)) handed to the sandbox, \(DemoReport.grouped(Int64(rate.rounded()))) per second\n"
            text += "receipts posted by the sandbox to herald webhooks, signed (X-Hub-Signature-256), seed \(receiptSeed): "
                + "\(DemoReport.grouped(Int64(tally.delivered))) delivered, \(DemoReport.grouped(Int64(tally.read))) read, "
                + "\(DemoReport.grouped(Int64(tally.failed))) failed"
                + (tally.refused > 0 ? ", \(tally.refused) notifications refused" : "") + "\n"
            if cluster == nil, let first = seeded.broadcasts.first, let last = seeded.broadcasts.last {
                text += "query them: SELECT * FROM herald.broadcast_report WHERE broadcast_id BETWEEN \(first) AND \(last);\n"
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if progress.outcome == .timedOut {
            throw DemoFailure("the broadcasts did not finish within \(timeout) s (--timeout); run with --log-level info to see why")
        }
    }

    /// The variable named by the sandbox channels' `app_secret_env` (set only in this process's
    /// webhooks configuration, never exported).
    static let receiptsSecretEnv = "DEMO_SANDBOX_APP_SECRET"

    /// `herald webhooks` on 127.0.0.1 and the sandbox's receipt emitter, sharing a random app secret.
    private func sandboxReceipts(url: String?, channels: [(id: Int64, phoneNumberID: String?)], floor: Int64,
                                 logger: Logger) -> (webhooks: WebhooksServer, emitter: SandboxReceiptEmitter, transport: CurlTransport) {
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
        var environment = ProcessInfo.processInfo.environment
        environment[Self.receiptsSecretEnv] = secret
        var config = WebhooksConfiguration(databaseURL: url, environment: environment)
        config.host = "127.0.0.1"
        config.port = webhooksPort
        config.connections = 3
        let webhooks = WebhooksServer(configuration: config, logger: logger)
        let transport = CurlTransport(maxInFlight: 8, logger: logger)
        let emitter = SandboxReceiptEmitter(
            configuration: SandboxReceiptEmitter.Configuration(
                channels: channels.compactMap { c in c.phoneNumberID.map { .init(id: c.id, phoneNumberID: $0, appSecret: secret) } },
                receipts: SandboxReceipts(seed: receiptSeed), floor: floor),
            connectionString: url, webhooksURL: { webhooks.boundPort.map { "http://127.0.0.1:\($0)" } },
            transport: transport, logger: logger)
        return (webhooks, emitter, transport)
    }

    private func say(_ line: String) {
        FileHandle.standardError.write(Data("herald demo: \(line)\n".utf8))
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as DemoFailure: error.message
        case let error as PrivateCluster.Error: error.description
        case let error as MigrationError: "\(error)"
        case let error as PostgresError: "database error: \(error)"
        default: "\(error)"
        }
    }


    static func seconds(_ d: Duration) -> String { String(format: "%.1f s", d.inSeconds) }
}

/// A failure whose message is already the one line to print.
struct DemoFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// `herald demo --json`.
struct DemoJSONReport: Encodable {
    var database: String
    var outcome: String
    var contacts: Int
    var workers: Int
    var elapsedSeconds: Double
    var broadcasts: [DemoReportRow]
    var skipReasons: [String: Int64]
    /// The sandbox's receipts that `herald webhooks` accepted, and the notifications it refused.
    var receipts: SandboxReceiptEmitter.Tally
    /// `--receipt-seed`: with the message ids, it decided every receipt.
    var receiptSeed: UInt64

    enum CodingKeys: String, CodingKey {
        case database, outcome, contacts, workers, broadcasts, receipts
        case elapsedSeconds = "elapsed_seconds", skipReasons = "skip_reasons", receiptSeed = "receipt_seed"
    }
}

/// SIGINT and SIGTERM while the ServiceGroup does not own them (starting PostgreSQL, migrating,
/// seeding, printing the report): stop the private cluster, say so, exit 130 or 143. While the
/// group runs, its own graceful shutdown handles the first one and the demo ends normally; a
/// second one forces the exit (after stopping the cluster), should the shutdown hang.
final class DemoInterrupts: @unchecked Sendable {
    // @unchecked: `sources` is written once in init, before a handler can run; the rest is a Mutex.
    private var sources: [any DispatchSourceSignal] = []
    private let state = Mutex<(cluster: PrivateCluster?, groupRuns: Bool, signals: Int)>((nil, false, 0))

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.interrupted(sig) }
            source.resume()
            sources.append(source)
        }
    }

    var cluster: PrivateCluster? {
        get { state.withLock { $0.cluster } }
        set { state.withLock { $0.cluster = newValue } }
    }

    func serviceGroupStarts() { state.withLock { $0.groupRuns = true } }
    func setupDone() { state.withLock { $0.groupRuns = false } }

    private func interrupted(_ sig: Int32) {
        let (cluster, groupRuns, signals) = state.withLock { s in
            if s.groupRuns { s.signals += 1 }
            return (s.cluster, s.groupRuns, s.signals)
        }
        if groupRuns && signals == 1 { return }
        cluster?.stop()
        let what = cluster == nil ? "" : "; stopped the private PostgreSQL and removed \(cluster!.directory)"
        FileHandle.standardError.write(Data("herald demo: interrupted\(what)\n".utf8))
        exit(128 + sig)
    }
}
