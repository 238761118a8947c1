import Foundation
import HeraldPostgres
import HeraldSQL
import HeraldStore
import HeraldTesting
import Testing

@Suite("herald migrate")
struct MigrationTests {
    @Test("the embedded list matches sql/migrations, in order")
    func listMatchesDirectory() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../sql/migrations").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(Migrations.all.map(\.name) == files)
        #expect(Migrations.all.map(\.version) == Array(1...files.count))
        for m in Migrations.all {
            let onDisk = try String(contentsOf: dir.appendingPathComponent(m.name), encoding: .utf8)
            #expect(onDisk == m.sql, "\(m.name) differs from the embedded copy")
        }
    }

    @Test("migrating twice: the second run is a no-op")
    func idempotent() async throws {
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let first = try await Migrator().migrate(on: conn)
            let second = try await Migrator().migrate(on: conn)
            #expect(first == Migrations.all.map(\.name))
            #expect(second.isEmpty)
        }
    }

    @Test("four concurrent `herald migrate` processes end with one correct schema")
    func concurrentProcesses() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await withTestDatabase(migrated: false) { db in
            let processes = try (0..<4).map { _ in try HeraldProcess.start(bin, ["migrate"], databaseURL: db.url) }
            for p in processes {
                let status = await p.wait()
                #expect(status == 0, "herald migrate exited \(status): \(p.stderr)")
            }
            let conn = try await db.connect()
            let versions = try await conn.query("SELECT version FROM herald.schema_migrations ORDER BY version")
                .map { try $0.decode(Int.self, at: 0) }
            #expect(versions == Migrations.all.map(\.version))
        }
    }

    @Test("a broken migration rolls back and names its file")
    func brokenMigration() async throws {
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let broken = Migrations.all + [Migrations.Migration(name: "0099_broken.sql",
                sql: "CREATE TABLE herald.half_done (id int); SELECT * FROM herald.no_such_table;")]
            let error = await #expect(throws: MigrationError.self) { try await Migrator(migrations: broken).migrate(on: conn) }
            #expect(error?.file == "0099_broken.sql")
            #expect(error?.description.contains("no_such_table") == true)
            let halfDone = try await conn.query("SELECT to_regclass('herald.half_done') IS NULL")[0].decode(Bool.self, at: 0)
            #expect(halfDone, "the broken migration's first statement must be rolled back")
            let versions = try await conn.query("SELECT max(version) FROM herald.schema_migrations")[0].decode(Int.self, at: 0)
            #expect(versions == Migrations.all.count)
        }
    }

    @Test("`herald migrate` with an unreachable database exits non-zero with one line on stderr")
    func unreachable() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"])
        let p = try HeraldProcess.start(bin, ["migrate"], databaseURL: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
        let status = await p.wait()
        #expect(status != 0)
        let lines = p.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(p.stderr)")
        #expect(lines.first?.hasPrefix("herald: cannot migrate: connection failed") == true)
    }
}
