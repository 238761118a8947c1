import ArgumentParser
import Foundation
import HeraldPostgres
import HeraldStore
import Logging

@main
struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "High-volume marketing broadcasts over WhatsApp, SMS and email, on PostgreSQL.",
        discussion: """
            The database is chosen by DATABASE_URL (a libpq connection string or URI) or, without
            it, by libpq's own PG* variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
            """,
        subcommands: [Migrate.self, Worker.self, Scheduler.self, Webhooks.self, Report.self, Preview.self, Demo.self]
    )
}

/// Prints one line to stderr and exits non-zero: the shape of every fatal error in Herald.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("herald: \(message)\n".utf8))
    exit(code)
}

/// Shared options: logging.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--metrics-port` for long-running commands other than `herald webhooks`.
struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve GET /metrics (Prometheus) and GET /healthz on this port; off when not given.")
    var metricsPort: Int?

    func validate() throws {
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be between 0 and 65535") }
    }
}

func makeLogger(_ label: String, _ options: CommonOptions) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = options.logLevel
    return logger
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the database schema up to date (safe to run concurrently and repeatedly).")
    @OptionGroup var common: CommonOptions

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger("herald.migrate", common)
        do {
            let connection = try await PostgresConnection.connect(PostgresConnection.environmentConnectionString,
                                                                  applicationName: "herald-migrate", logger: logger)
            let applied = try await Migrator(logger: logger).migrate(on: connection)
            await connection.close()
            print(applied.isEmpty ? "schema is up to date" : "applied \(applied.count) migration(s): \(applied.joined(separator: ", "))")
        } catch let error as MigrationError {
            fail("\(error)")
        } catch let error as PostgresError {
            fail("cannot migrate: \(error)")
        }
    }
}

/// A command whose issue has not landed yet: says so and exits non-zero instead of pretending.
protocol NotYetImplemented: AsyncParsableCommand {}
extension NotYetImplemented {
    func run() async throws {
        fail("`herald \(Self.configuration.commandName ?? "")` is not implemented yet (see README.md, \"Status\")", code: 2)
    }
}

