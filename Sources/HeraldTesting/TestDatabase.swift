import Foundation
import HeraldPostgres

/// A database of its own for one test, cloned from the migrated template that `scripts/test`
/// prepares, and dropped afterwards. Tests can therefore run in any order and in parallel.
///
/// `scripts/test` sets `HERALD_TEST_DATABASE_URL` (a URI to the cluster's `postgres` database) and
/// `HERALD_TEST_TEMPLATE`. Without them a test fails loudly: a silent skip would hide a broken CI.
public struct TestDatabase: Sendable {
    /// The database's name.
    public let name: String
    /// A connection URI for it, to pass as `DATABASE_URL` to `herald` processes.
    public let url: String
    let adminURL: String

    /// The environment is missing: the tests were not started through `scripts/test`.
    public struct NotConfigured: Error, CustomStringConvertible {
        public var description: String {
            "HERALD_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a private PostgreSQL"
        }
    }

    /// Creates a fresh, migrated database.
    /// - Parameter migrated: false clones an empty database (`template0`) instead of Herald's schema.
    public static func create(migrated: Bool = true) async throws -> TestDatabase {
        let env = ProcessInfo.processInfo.environment
        guard let adminURL = env["HERALD_TEST_DATABASE_URL"], !adminURL.isEmpty else { throw NotConfigured() }
        let template = migrated ? (env["HERALD_TEST_TEMPLATE"] ?? "herald_template") : "template0"
        let name = "t_\(UInt64.random(in: 0..<UInt64.max) & 0xffff_ffff_ffff)"
        let admin = try await PostgresConnection.connect(adminURL)
        // Identifiers cannot be parameters; both names are generated here, not user input.
        try await admin.simpleQuery("CREATE DATABASE \(name) TEMPLATE \(template)")
        await admin.close()
        return TestDatabase(name: name, url: Self.url(adminURL, database: name), adminURL: adminURL)
    }

    /// Opens a connection to this database.
    public func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(url)
    }

    /// Drops the database, ending any session still connected to it.
    public func drop() async {
        guard let admin = try? await PostgresConnection.connect(adminURL) else { return }
        try? await admin.simpleQuery("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        await admin.close()
    }

    /// Replaces the database part of a `postgresql://…/db` URI.
    static func url(_ adminURL: String, database: String) -> String {
        var base = adminURL
        var query = ""
        if let q = base.firstIndex(of: "?") {
            query = String(base[q...])
            base = String(base[..<q])
        }
        let schemeEnd = base.range(of: "://")?.upperBound ?? base.startIndex
        if let slash = base[schemeEnd...].lastIndex(of: "/") { base = String(base[..<slash]) }
        return base + "/" + database + query
    }
}

/// Runs `body` with a fresh migrated database, dropping it afterwards (also when `body` throws).
public func withTestDatabase<T: Sendable>(migrated: Bool = true, _ body: (TestDatabase) async throws -> T) async throws -> T {
    try await scoped(try await TestDatabase.create(migrated: migrated), cleanUp: { await $0.drop() }, body)
}

/// Runs `body` with a fresh migrated database and one connection to it, the opening most tests
/// share; closes the connection and drops the database afterwards (also when `body` throws).
public func withTestConnection<T: Sendable>(_ body: (TestDatabase, PostgresConnection) async throws -> T) async throws -> T {
    try await withTestDatabase { db in
        try await scoped(try await db.connect(), cleanUp: { await $0.close() }) { try await body(db, $0) }
    }
}
