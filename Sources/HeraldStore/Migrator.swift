import HeraldPostgres
import HeraldSQL
import Logging

/// A migration that failed; names the file so the operator knows where to look.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var underlying: PostgresError
    public var description: String { "migration \(file) failed: \(underlying)" }
}

/// Applies Herald's schema migrations.
///
/// Safe to run concurrently: every runner takes the same session-level advisory lock first, so
/// they apply migrations one after another; a runner that finds the schema up to date does
/// nothing. Each migration runs in its own transaction together with the row recording it, so a
/// failing migration leaves no trace and the ones before it stay applied.
public struct Migrator: Sendable {
    /// Arbitrary constant key of the advisory lock ("herald" in ASCII).
    static let lockKey: Int64 = 0x68_65_72_61_6c_64
    /// How long a migration waits for a lock before it fails (see ``migrate(on:)``).
    public static let lockTimeout = "5s"
    public let migrations: [Migrations.Migration]
    let logger: Logger

    public init(migrations: [Migrations.Migration] = Migrations.all, logger: Logger = Logger(label: "herald.migrate")) {
        self.migrations = migrations
        self.logger = logger
    }

    /// Brings the schema up to date.
    /// - Returns: the names of the migrations applied by this call (empty when up to date).
    /// - Throws: ``MigrationError`` naming the failing file, or ``PostgresError``.
    ///
    /// **Timeouts.** While it runs, the session has no `statement_timeout` (a migration may rewrite
    /// a big table, and waiting for another runner's migrations is expected); each migration's
    /// transaction runs with `lock_timeout` ``lockTimeout`` (a migration may set its own with
    /// `SET LOCAL`), so a migration stuck behind a long transaction fails, naming its file, instead
    /// of queueing every statement on the table behind its lock. Run it again once the blocker is
    /// gone. The session's previous `statement_timeout` is restored afterwards.
    @discardableResult
    public func migrate(on connection: PostgresConnection) async throws -> [String] {
        let previous = try await connection.query("SELECT current_setting('statement_timeout') AS statement_timeout")[0]
            .decode(String.self, "statement_timeout")
        try await connection.execute("SELECT set_config('statement_timeout', '0', false)")
        try await connection.execute("SELECT pg_advisory_lock(\(Self.lockKey))")
        do {
            let applied = try await applyPending(on: connection)
            try await connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))")
            try await connection.execute("SELECT set_config('statement_timeout', \(previous), false)")
            return applied
        } catch {
            if await connection.isUsable {
                _ = try? await connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))")
                _ = try? await connection.execute("SELECT set_config('statement_timeout', \(previous), false)")
            }
            throw error
        }
    }

    private func applyPending(on connection: PostgresConnection) async throws -> [String] {
        try await connection.simpleQuery("""
            SET client_min_messages = warning;
            CREATE SCHEMA IF NOT EXISTS herald;
            CREATE TABLE IF NOT EXISTS herald.schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """)
        let rows = try await connection.query("SELECT version FROM herald.schema_migrations")
        let done = Set(try rows.map { try $0.decode(Int.self, "version") })
        var applied: [String] = []
        for migration in migrations where !done.contains(migration.version) {
            logger.info("applying migration", metadata: ["migration": "\(migration.name)"])
            do {
                try await connection.simpleQuery("BEGIN")
                try await connection.execute("SELECT set_config('lock_timeout', \(Self.lockTimeout), true)")
                try await connection.simpleQuery(migration.sql)
                try await connection.execute(
                    "INSERT INTO herald.schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))")
                try await connection.simpleQuery("COMMIT")
            } catch let error as PostgresError {
                if await connection.isUsable { try? await connection.simpleQuery("ROLLBACK") }
                throw MigrationError(file: migration.name, underlying: error)
            }
            applied.append(migration.name)
        }
        return applied
    }
}
