import Foundation
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Testing

/// Herald's database roles, tried by logging in as each: a login role (made here, in the test
/// database's cluster, with a password) granted one of them.
@Suite("Database roles")
struct DatabaseRolesTests {
    /// Runs `body` connected as a fresh login role that is a member of `role`; drops it afterwards.
    func withLogin(_ db: TestDatabase, as role: String, _ body: (PostgresConnection) async throws -> Void) async throws {
        let owner = try await db.connect()
        #expect(try await DatabaseRoles.ensure(on: owner) == .applied)
        let login = "login_\(UInt32.random(in: 0..<UInt32.max))"
        let password = UUID().uuidString
        // Identifiers and the password are generated here, not input.
        try await owner.simpleQuery("CREATE ROLE \(login) LOGIN PASSWORD '\(password)' IN ROLE \(role)")
        do {
            let connection = try await PostgresConnection.connect(Self.url(db.url, user: login, password: password))
            do {
                try await body(connection)
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
        } catch {
            try? await owner.simpleQuery("DROP ROLE \(login)")
            await owner.close()
            throw error
        }
        try await owner.simpleQuery("DROP ROLE \(login)")
        await owner.close()
    }

    static func url(_ url: String, user: String, password: String) -> String {
        let start = url.range(of: "://")!.upperBound
        let at = url[start...].firstIndex(of: "@")!
        return String(url[..<start]) + "\(user):\(password)" + String(url[at...])
    }

    /// Whether `sql` is refused for lack of privilege (SQLSTATE 42501), or for not owning the
    /// object (42501 as well for DROP/TRUNCATE).
    func refused(_ c: PostgresConnection, _ sql: String) async -> Bool {
        do {
            try await c.simpleQuery(sql)
            return false
        } catch let error as PostgresError {
            return error.sqlState == "42501"
        } catch {
            return false
        }
    }

    func seed(_ db: TestDatabase) async throws {
        let c = try await db.connect()
        try await c.simpleQuery("""
            INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
                VALUES ('wa', 'whatsapp', 'sandbox', '{"access_token_env":"WA_TOKEN"}', 10, 10);
            INSERT INTO herald.contacts (first_name, phone) VALUES ('Ada', '+2348031234567');
            INSERT INTO herald.broadcasts (name, channel_id, body, status) VALUES ('b', 1, 'hi', 'sending');
            INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address) VALUES (1, 1, 1, '+2348031234567');
            INSERT INTO herald.jobs (message_id, broadcast_id, channel_id) VALUES (1, 1, 1);
            INSERT INTO herald.delivery_receipts (provider, provider_message_id, status, payload)
                VALUES ('whatsapp_cloud', 'wamid.1', 'sent', '{}');
            """)
        await c.close()
    }

    @Test("the admin tool writes the tables of section 1 and reads the views")
    func adminMay() async throws {
        try await withTestDatabase { db in
            try await seed(db)
            try await withLogin(db, as: DatabaseRoles.admin) { (c: PostgresConnection) async throws in
                try await c.simpleQuery("""
                    INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
                        VALUES ('sms', 'sms', 'sandbox', '{}', 5, 5);
                    INSERT INTO herald.contacts (first_name, email) VALUES ('Grace', 'grace@example.com');
                    INSERT INTO herald.groups (name) VALUES ('vip');
                    INSERT INTO herald.group_members (group_id, contact_id) VALUES (1, 1);
                    INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (2, 'email');
                    INSERT INTO herald.broadcasts (name, channel_id, body, status) VALUES ('next', 1, 'hello', 'draft');
                    INSERT INTO herald.broadcast_groups (broadcast_id, group_id) VALUES (2, 1);
                    UPDATE herald.broadcasts SET status = 'paused' WHERE id = 1;
                    DELETE FROM herald.broadcast_groups;
                    """)
                #expect(try await c.query("SELECT count(*) FROM herald.broadcast_report")[0].decode(Int.self, at: 0) == 2)
                #expect(try await c.query("SELECT count(*) FROM herald.message_status")[0].decode(Int.self, at: 0) == 1)
                #expect(try await c.query("SELECT settings::text FROM herald.channels WHERE id = 1")[0].decode(String.self, at: 0)
                    .contains("WA_TOKEN"))
            }
        }
    }

    @Test("the admin tool cannot touch Herald's own tables",
          arguments: ["SELECT * FROM herald.jobs", "DELETE FROM herald.jobs", "UPDATE herald.rate_buckets SET tokens = 1e9",
                      "INSERT INTO herald.broadcast_counts VALUES (1, 'sent', 1000000)", "SELECT * FROM herald.schema_migrations",
                      "DELETE FROM herald.schema_migrations", "UPDATE herald.messages SET status = 'read'",
                      "SELECT * FROM herald.delivery_receipts", "SELECT herald.take_tokens(1, 100)",
                      "DROP TABLE herald.broadcasts", "CREATE TABLE herald.mine (id int)"])
    func adminMayNot(sql: String) async throws {
        try await withTestDatabase { db in
            try await seed(db)
            try await withLogin(db, as: DatabaseRoles.admin) { (c: PostgresConnection) async throws in
                #expect(await refused(c, sql), "\(sql)")
            }
        }
    }

    @Test("analysts read the report views and the receipts")
    func readerMay() async throws {
        try await withTestDatabase { db in
            try await seed(db)
            try await withLogin(db, as: DatabaseRoles.reader) { (c: PostgresConnection) async throws in
                #expect(try await c.query("SELECT status FROM herald.message_status")[0].decode(String.self, at: 0) == "queued")
                #expect(try await c.query("SELECT recipients FROM herald.broadcast_report")[0].decode(Int.self, at: 0) == 1)
                #expect(try await c.query("SELECT provider_message_id FROM herald.delivery_receipts")[0].decode(String.self, at: 0) == "wamid.1")
            }
        }
    }

    @Test("analysts cannot write anything nor read channel settings",
          arguments: ["SELECT settings FROM herald.channels", "SELECT * FROM herald.contacts", "SELECT * FROM herald.channel_report",
                      "INSERT INTO herald.delivery_receipts (provider, provider_message_id, status, payload) VALUES ('x', 'y', 'z', '{}')",
                      "DELETE FROM herald.delivery_receipts", "UPDATE herald.broadcasts SET status = 'cancelled'",
                      "INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (1, 'sms')", "SELECT * FROM herald.jobs",
                      "DELETE FROM herald.messages", "CREATE TABLE herald.mine (id int)"])
    func readerMayNot(sql: String) async throws {
        try await withTestDatabase { db in
            try await seed(db)
            try await withLogin(db, as: DatabaseRoles.reader) { (c: PostgresConnection) async throws in
                #expect(await refused(c, sql), "\(sql)")
            }
        }
    }

    @Test("the herald processes read and write every table and call Herald's functions")
    func runtimeMay() async throws {
        try await withTestDatabase { db in
            try await seed(db)
            try await withLogin(db, as: DatabaseRoles.runtime) { (c: PostgresConnection) async throws in
                try await c.simpleQuery("""
                    SELECT * FROM herald.take_tokens(1, 5);
                    UPDATE herald.jobs SET lease_owner = 'w1';
                    UPDATE herald.messages SET status = 'sent', provider_message_id = 'wamid.1';
                    DELETE FROM herald.jobs;
                    INSERT INTO herald.delivery_receipts (provider, provider_message_id, status, payload)
                        VALUES ('twilio', 'SM1', 'delivered', '{}');
                    INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (1, 'sms');
                    UPDATE herald.broadcasts SET status = 'completed', finished_at = now();
                    SELECT herald.compact_broadcast_counts();
                    SELECT count(*) FROM herald.schema_migrations;
                    """)
                #expect(try await c.query("SELECT sent FROM herald.broadcast_report")[0].decode(Int.self, at: 0) == 1)
            }
        }
    }

    @Test("the herald processes cannot change the schema",
          arguments: ["DROP TABLE herald.messages", "TRUNCATE herald.jobs", "ALTER TABLE herald.channels ADD COLUMN x int",
                      "CREATE TABLE herald.mine (id int)", "DROP VIEW herald.broadcast_report"])
    func runtimeMayNot(sql: String) async throws {
        try await withTestDatabase { db in
            try await seed(db)
            try await withLogin(db, as: DatabaseRoles.runtime) { (c: PostgresConnection) async throws in
                #expect(await refused(c, sql), "\(sql)")
            }
        }
    }

    @Test("`herald roles --sql` prints statements that create the roles and are safe to run again")
    func script() async throws {
        let script = DatabaseRoles.script
        for role in DatabaseRoles.all { #expect(script.contains("CREATE ROLE \(role) NOLOGIN")) }
        try await withTestConnection { db, c in
            try await c.simpleQuery(script)
            try await c.simpleQuery(script)
            let roles = try await c.query("""
                SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'herald\\_%' AND NOT rolcanlogin ORDER BY 1
                """).map { try $0.decode(String.self, at: 0) }
            #expect(roles == DatabaseRoles.all.sorted())
            await c.close()
        }
    }
}
