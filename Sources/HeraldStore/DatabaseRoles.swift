import HeraldPostgres

/// Herald's three database roles (the contract's "Database roles"), without login: ops grant them
/// to login roles.
///
/// | role | may |
/// |---|---|
/// | `herald_admin` | the admin tool: read and write the tables of the contract's section 1 (`channels`, `contacts`, `opt_outs`, `groups`, `group_members`, `templates`, `broadcasts`, `broadcast_groups`, `broadcast_contacts`), read the views; nothing of Herald's own tables (`messages`, `jobs`, `rate_buckets`, `broadcast_counts`, `schema_migrations`, …) |
/// | `herald_reader` | analysts: read `message_status`, `broadcast_report` and `delivery_receipts`; nothing else (not `channels`, whose settings name secrets) |
/// | `herald_runtime` | the `herald` processes: read and write every table of the schema and call its functions; no DDL, no `TRUNCATE` (the tables belong to the migrating user) |
///
/// ``statements`` are idempotent: `herald migrate` runs them after every migration when it may
/// (so tables added by later migrations are covered), and `herald roles --sql` prints them for a
/// DBA. Rights are reset to exactly these each time: a right granted by hand to one of these roles
/// on a Herald table does not survive the next `herald migrate`.
public enum DatabaseRoles {
    public static let admin = "herald_admin"
    public static let reader = "herald_reader"
    public static let runtime = "herald_runtime"
    public static let all = [admin, reader, runtime]

    /// The tables the admin tool writes (contract section 1).
    public static let adminTables = ["channels", "contacts", "opt_outs", "groups", "group_members", "templates",
                                     "broadcasts", "broadcast_groups", "broadcast_contacts"]
    /// The views the admin tool reads.
    public static let adminViews = ["message_status", "broadcast_report", "channel_report"]
    /// What analysts read (contract section 2).
    public static let readerRelations = ["message_status", "broadcast_report", "delivery_receipts"]

    /// Creates the roles that are missing (needs `CREATEROLE`); safe when they exist or when two
    /// runners race.
    public static var createStatements: [String] {
        all.map { role in
            """
            DO $$ BEGIN CREATE ROLE \(role) NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$
            """
        }
    }

    /// Resets the roles' rights on schema `herald` to exactly the contract's (needs to own the
    /// schema's objects, as the migrating user does).
    public static var grantStatements: [String] {
        let roles = all.joined(separator: ", ")
        let table = { (name: String) in "herald.\(name)" }
        return [
            "REVOKE ALL ON ALL TABLES IN SCHEMA herald FROM \(roles)",
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA herald FROM \(roles)",
            "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA herald FROM PUBLIC, \(roles)",
            "REVOKE ALL ON SCHEMA herald FROM PUBLIC",
            "GRANT USAGE ON SCHEMA herald TO \(roles)",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON \(adminTables.map(table).joined(separator: ", ")) TO \(admin)",
            "GRANT SELECT ON \(adminViews.map(table).joined(separator: ", ")) TO \(admin)",
            "GRANT SELECT ON \(readerRelations.map(table).joined(separator: ", ")) TO \(reader)",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA herald TO \(runtime)",
            "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA herald TO \(runtime)",
            "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA herald TO \(runtime)",
            // The admin tool's writes run Herald's CHECK and trigger functions (array and window
            // shapes, a broadcast's start). They are SECURITY INVOKER: calling one gives no
            // access to a table the admin tool may not touch.
            "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA herald TO \(admin)",
            // Objects the migrating user creates later (before the next `herald migrate` re-grants).
            "ALTER DEFAULT PRIVILEGES IN SCHEMA herald GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \(runtime)",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA herald GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO \(runtime)",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA herald REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA herald GRANT EXECUTE ON FUNCTIONS TO \(runtime), \(admin)",
        ]
    }

    /// What `herald roles --sql` prints: one transaction a DBA can run with `psql` as a user that
    /// may create roles and owns Herald's schema (or a superuser), after `herald migrate`.
    public static var script: String {
        var lines = ["-- Herald's database roles (herald roles --sql). Run after `herald migrate`, as a user that may",
                     "-- create roles and owns schema herald (or a superuser). Safe to run again.",
                     "BEGIN;"]
        lines += createStatements.map { $0 + ";" }
        lines += grantStatements.map { $0 + ";" }
        lines += ["COMMIT;",
                  "",
                  "-- Then give them to login roles, for example:",
                  "--   CREATE ROLE herald_app LOGIN PASSWORD '...' IN ROLE \(runtime);",
                  "--   CREATE ROLE admin_tool LOGIN PASSWORD '...' IN ROLE \(admin);",
                  "--   CREATE ROLE analyst LOGIN PASSWORD '...' IN ROLE \(reader);",
                  "-- Role settings apply to the role one logs in as, so set the runtime's guard on its login role:",
                  "--   ALTER ROLE herald_app SET idle_in_transaction_session_timeout = '60s';"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// What ``ensure(on:)`` did.
    public enum Outcome: Sendable, Equatable {
        /// The roles exist and have exactly their rights.
        case applied
        /// The connected user may not create the missing roles: a DBA must (`herald roles --sql`).
        case notPermitted(missing: [String])
    }

    /// Creates the missing roles when the connected user may, and resets their rights, in one
    /// transaction under the migrations' advisory lock (so concurrent `herald migrate` runs take
    /// turns). Does nothing when a role is missing and cannot be created.
    public static func ensure(on connection: PostgresConnection) async throws -> Outcome {
        let canCreate = try await connection.query("""
            SELECT rolsuper OR rolcreaterole AS can_create FROM pg_roles WHERE rolname = current_user
            """).first?.decode(Bool.self, "can_create") ?? false
        let existing = Set(try await connection.query("SELECT rolname::text AS rolname FROM pg_roles WHERE rolname = ANY(\(all)::text[])")
            .map { try $0.decode(String.self, "rolname") })
        let missing = all.filter { !existing.contains($0) }
        if !missing.isEmpty && !canCreate { return .notPermitted(missing: missing) }
        try await connection.simpleQuery("BEGIN")
        do {
            try await connection.execute("SELECT pg_advisory_xact_lock(\(Migrator.lockKey))")
            if !missing.isEmpty {
                for statement in createStatements { try await connection.simpleQuery(statement) }
            }
            for statement in grantStatements { try await connection.simpleQuery(statement) }
            try await connection.simpleQuery("COMMIT")
        } catch {
            if await connection.isUsable { try? await connection.simpleQuery("ROLLBACK") }
            throw error
        }
        return .applied
    }
}
