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
        subcommands: [Migrate.self, Roles.self, Worker.self, Scheduler.self, Webhooks.self, Report.self, Preview.self, Templates.self, Demo.self]
    )
}

/// Prints one line to stderr and exits non-zero: the shape of every fatal error in Herald.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("herald: \(message)\n".utf8))
    exit(code)
}

/// Connects to `DATABASE_URL` (or libpq's PG* variables), or fails with one line when the database
/// cannot be reached at all: the first thing every command that needs the database does.
func connectOrFail(applicationName: String = "herald", logger: Logger) async -> PostgresConnection {
    do {
        return try await PostgresConnection.connect(PostgresConnection.environmentConnectionString,
                                                    applicationName: applicationName, logger: logger)
    } catch {
        fail("cannot connect to the database: \(error)")
    }
}

/// A logger that prints nothing below `critical`: for one-shot commands whose output is the report.
func quietLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return logger
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
    @Option(help: "Address the metrics port binds (0.0.0.0 to let a scraper on another machine in).")
    var metricsHost: String = "127.0.0.1"

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
            let roles = try await DatabaseRoles.ensure(on: connection)
            await connection.close()
            print(applied.isEmpty ? "schema is up to date" : "applied \(applied.count) migration(s): \(applied.joined(separator: ", "))")
            if case .notPermitted(let missing) = roles { print(Roles.notPermittedLine(missing)) }
        } catch let error as MigrationError {
            fail("\(error)")
        } catch let error as PostgresError {
            fail("cannot migrate: \(error)")
        }
    }
}

