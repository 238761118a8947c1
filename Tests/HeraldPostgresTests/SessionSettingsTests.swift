import Foundation
import HeraldPostgres
import HeraldSQL
import HeraldStore
import HeraldTesting
import Testing

/// Issue 16, finding 5: every session runs with timeouts suited to its process, libpq connects
/// with TCP keepalives, and migrations give up on a lock instead of queueing traffic behind it.
@Suite("Session settings: timeouts, keepalives, lock_timeout")
struct SessionSettingsTests {
    static func show(_ c: PostgresConnection, _ name: String) async throws -> String {
        try await c.query("SELECT current_setting(\(name))")[0].decode(String.self, at: 0)
    }

    @Test("a default session has statement_timeout and idle_in_transaction_session_timeout set")
    func defaults() async throws {
        try await withTestConnection { (_, c) async throws in
            #expect(try await Self.show(c, "statement_timeout") == "2min")
            #expect(try await Self.show(c, "idle_in_transaction_session_timeout") == "1min")
            #expect(try await Self.show(c, "tcp_keepalives_idle") == "5")
            #expect(try await Self.show(c, "tcp_user_timeout") == "10000")
        }
    }

    @Test("the scheduler's session ends when idle for 10 s")
    func scheduler() async throws {
        try await withTestDatabase { db in
            let c = try await PostgresConnection.connect(db.url, session: .scheduler)
            #expect(try await Self.show(c, "idle_session_timeout") == "10s")
            #expect(try await Self.show(c, "statement_timeout") == "5min")
        }
    }

    @Test("libpq connects with keepalives and tcp_user_timeout unless DATABASE_URL sets them")
    func keepalives() async throws {
        try await withTestConnection { db, c in
            #expect(await c.connectionParameter("keepalives") == "1")
            #expect(await c.connectionParameter("keepalives_idle") == "5")
            #expect(await c.connectionParameter("tcp_user_timeout") == "10000")
            let separator = db.url.contains("?") ? "&" : "?"
            let own = try await PostgresConnection.connect(db.url + separator + "keepalives_idle=30&options=-c%20statement_timeout%3D7s")
            #expect(await own.connectionParameter("keepalives_idle") == "30")
            #expect(try await Self.show(own, "statement_timeout") == "7s", "a DATABASE_URL's options win")
        }
    }

    @Test("a migration waiting for a lock fails after lock_timeout, naming its file")
    func migrationLockTimeout() async throws {
        try await withTestConnection { db, blocker in
            try await blocker.simpleQuery("BEGIN; LOCK TABLE herald.broadcasts IN ACCESS SHARE MODE")
            let c = try await db.connect()
            let waiting = Migrations.all + [Migrations.Migration(name: "0099_wants_lock.sql",
                sql: "ALTER TABLE herald.broadcasts ADD COLUMN waits_for_lock int")]
            let started = ContinuousClock.now
            let error = await #expect(throws: MigrationError.self) { try await Migrator(migrations: waiting).migrate(on: c) }
            #expect(error?.file == "0099_wants_lock.sql")
            #expect(error?.underlying.sqlState == "55P03")
            #expect(ContinuousClock.now - started < .seconds(30))
            try await blocker.simpleQuery("ROLLBACK")
            #expect(try await Self.show(c, "statement_timeout") == "2min", "the session's own timeout is restored")
        }
    }
}
