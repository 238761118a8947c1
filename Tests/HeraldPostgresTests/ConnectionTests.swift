import Foundation
import HeraldPostgres
import HeraldTesting
import Testing

@Suite("Connections: errors, transactions, pipelines, loss")
struct ConnectionTests {
    var adminURL: String { ProcessInfo.processInfo.environment["HERALD_TEST_DATABASE_URL"] ?? "" }

    /// The error connecting to `connectionString` fails with (an issue is recorded when it connects).
    static func connectError(_ connectionString: String) async -> PostgresError? {
        await #expect(throws: PostgresError.self) { _ = try await PostgresConnection.connect(connectionString) }
    }

    @Test("a bad DATABASE_URL is one clear error")
    func badURL() async throws {
        let error = await Self.connectError("postgresql://localhost/db?no_such_option=1")
        #expect(error?.code == .invalidConnectionString)
        #expect(error?.description.contains("\n") == false)
    }

    @Test("an unknown host fails to connect with libpq's reason")
    func badHost() async throws {
        let error = await Self.connectError("host=no-such-host.invalid connect_timeout=3")
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("no-such-host.invalid") == true)
    }

    @Test("a wrong password fails with the server's message")
    func wrongPassword() async throws {
        let url = adminURL.replacingOccurrences(of: "postgres:herald@", with: "postgres:wrong@")
        try #require(url != adminURL, "expects scripts/test's URL with the password herald")
        let error = await Self.connectError(url)
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("password authentication failed") == true)
    }

    @Test("server errors carry SQLSTATE, message and detail, the detail only in debugDescription")
    func serverError() async throws {
        try await withTestConnection { db, conn in
            try await conn.execute("INSERT INTO herald.groups (name) VALUES ('vip')")
            let error = await #expect(throws: PostgresError.self) {
                try await conn.execute("INSERT INTO herald.groups (name) VALUES ('vip')")
            }
            #expect(error?.sqlState == "23505")
            #expect(error?.message.contains("groups_name_key") == true)
            #expect(error?.detail?.contains("(name)=(vip)") == true)
            // The row's values stay out of what reaches logs by default.
            #expect(error?.description.contains("vip") == false)
            #expect(error?.debugDescription.contains("(name)=(vip)") == true)
            // The connection stays usable after a statement error.
            #expect(try await conn.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
        }
    }

    @Test("transactions commit, and roll back when the body throws")
    func transactions() async throws {
        struct Boom: Error {}
        try await withTestConnection { db, conn in
            _ = try await conn.transaction { c in try c.execute("INSERT INTO herald.groups (name) VALUES ('kept')") }
            await #expect(throws: Boom.self) {
                try await conn.transaction { c in
                    try c.execute("INSERT INTO herald.groups (name) VALUES ('lost')")
                    throw Boom()
                }
            }
            let names = try await conn.query("SELECT name FROM herald.groups ORDER BY name").map { try $0.decode(String.self, at: 0) }
            #expect(names == ["kept"])
        }
    }

    @Test("a pipeline runs several statements in one round trip, all or nothing")
    func pipeline() async throws {
        try await withTestConnection { db, conn in
            let results = try await conn.pipeline([
                "INSERT INTO herald.groups (name) VALUES (\("a"))",
                "INSERT INTO herald.groups (name) VALUES (\("b")) RETURNING id",
                "SELECT count(*) FROM herald.groups",
            ])
            #expect(results.count == 3)
            #expect(results[0].affectedRows == 1)
            #expect(results[1].count == 1)
            #expect(try results[2][0].decode(Int.self, at: 0) == 2)
            let error = await #expect(throws: PostgresError.self) {
                try await conn.pipeline([
                    "INSERT INTO herald.groups (name) VALUES ('c')",
                    "INSERT INTO herald.groups (name) VALUES ('a')",
                    "INSERT INTO herald.groups (name) VALUES ('d')",
                ])
            }
            #expect(error?.sqlState == "23505")
            let count = try await conn.query("SELECT count(*) FROM herald.groups")[0].decode(Int.self, at: 0)
            #expect(count == 2)
        }
    }

    @Test("a killed backend surfaces as connectionLost, and the pool heals")
    func connectionLoss() async throws {
        try await withTestDatabase { db in
            let pool = PostgresPool(connectionString: db.url, maxConnections: 1)
            let pid = try await pool.withConnection { await $0.backendPID }
            let killer = try await db.connect()
            try await killer.execute("SELECT pg_terminate_backend(\(pid))")
            try await Task.sleep(for: .milliseconds(100))
            let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
            #expect(error?.code == .connectionLost)
            let one = try await pool.query("SELECT 1")[0].decode(Int.self, at: 0)
            #expect(one == 1)
            await pool.close()
        }
    }

    @Test("a prepared statement is prepared once per session and follows schema changes")
    func preparedStatements() async throws {
        try await withTestConnection { db, conn in
            try await conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
            try await conn.execute("INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 10) g")
            for id in [3, 7, 3] {
                let name = try await conn.preparedQuery("SELECT name FROM t WHERE id = \(id)")[0].decode(String.self, at: 0)
                #expect(name == "n\(id)")
            }
            // One server-side statement for the one SQL text, run three times.
            let prepared = try await conn.query("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'herald_%'")
            #expect(try prepared[0].decode(Int.self, at: 0) == 1)

            // A column type change makes the cached plan's result type invalid: prepared afresh.
            try await conn.execute("ALTER TABLE t ALTER COLUMN name TYPE varchar(20)")
            let after = try await conn.preparedQuery("SELECT name FROM t WHERE id = \(5)")
            #expect(try after[0].decode(String.self, at: 0) == "n5")

            // A statement with an error is reported and not remembered.
            let error = await #expect(throws: PostgresError.self) {
                try await conn.preparedQuery("SELECT nope FROM t WHERE id = \(1)")
            }
            #expect(error?.sqlState == "42703")
            #expect(try await conn.preparedQuery("SELECT count(*) FROM t WHERE id > \(0)")[0].decode(Int.self, at: 0) == 10)
        }
    }

    @Test("a pool serves more tasks than it has connections")
    func poolQueues() async throws {
        try await withTestDatabase { db in
            let pool = PostgresPool(connectionString: db.url, maxConnections: 2)
            let sum = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<20 {
                    group.addTask { try await pool.query("SELECT \(i)::int, pg_sleep(0.01)")[0].decode(Int.self, at: 0) }
                }
                return try await group.reduce(0, +)
            }
            #expect(sum == (0..<20).reduce(0, +))
            await pool.close()
        }
    }
}
