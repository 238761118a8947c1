import ArgumentParser
import Foundation
import HeraldStore

/// `herald roles --sql`: the statements that create Herald's database roles and give them their
/// rights, for a DBA to run when the migrating user may not create roles.
struct Roles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roles",
        abstract: "Print the SQL that creates Herald's database roles (herald_admin, herald_reader, herald_runtime).",
        discussion: """
            `herald migrate` creates the roles itself when the migrating user may create roles, and
            resets their rights after every migration. When it may not, it says so in one line; then
            a DBA runs `herald roles --sql | psql` as a user that may (after `herald migrate`), and
            grants the roles to login roles. Needs no database connection.
            """)

    @Flag(help: "Print the statements (the only output this command has).")
    var sql = false

    func validate() throws {
        guard sql else { throw ValidationError("say --sql: `herald roles --sql` prints the statements") }
    }

    func run() async throws {
        print(DatabaseRoles.script, terminator: "")
    }

    /// The one line `herald migrate` prints when it may not create the roles.
    static func notPermittedLine(_ missing: [String]) -> String {
        "database roles \(missing.joined(separator: ", ")) not created: this user may not create roles; "
            + "a DBA can run `herald roles --sql | psql` (see README, Security)"
    }
}
