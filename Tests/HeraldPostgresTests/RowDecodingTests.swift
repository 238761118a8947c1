import HeraldPostgres
import HeraldTesting
import Testing

@Suite("Rows decode by column name")
struct RowDecodingTests {
    /// 30 columns whose names share their length and first eight bytes (`column_v`), plus a short,
    /// a long and a non-ASCII one, so the name table must tell apart names that hash alike.
    static let similarNames = (0..<30).map { "column_value_\($0 < 10 ? "0" : "")\($0)" }

    @Test("every column of thousands of rows reads back by name, in any order")
    func manyRows() async throws {
        try await withTestDatabase(migrated: false) { db in
            let conn = try await db.connect()
            let similar = Self.similarNames.enumerated().map { "g * 100 + \($0.offset) AS \($0.element)" }.joined(separator: ", ")
            let rows = try await conn.query("""
                SELECT \(unescaped: similar), g AS n,
                       'label ' || g AS a_rather_long_column_name_for_a_label,
                       CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS "größe"
                FROM generate_series(1, 3000) AS g ORDER BY g
                """)
            #expect(rows.count == 3000)
            var checked = 0
            for (index, row) in rows.enumerated() {
                let n = index + 1
                #expect(try row.decode(Int.self, "n") == n)
                // Backwards, so the lookup cannot lean on the order the statement listed them in.
                for (offset, name) in Self.similarNames.enumerated().reversed() {
                    #expect(try row.decode(Int.self, name) == n * 100 + offset)
                    checked += 1
                }
                #expect(try row.decode(String.self, "a_rather_long_column_name_for_a_label") == "label \(n)")
                #expect(try row.decode(Int?.self, "größe") == (n % 3 == 0 ? nil : n))
            }
            #expect(checked == 3000 * 30)
        }
    }

    /// The one row `sql` returns, and the error decoding its column `name` as `type` gives.
    static func decodingError<T: PostgresDecodable>(_ type: T.Type, _ name: String, in sql: PostgresQuery) async throws
        -> (row: PostgresRow, error: PostgresError?) {
        try await withTestDatabase(migrated: false) { db in
            let row = try await db.connect().query(sql)[0]
            let error = #expect(throws: PostgresError.self) { try row.decode(type, name) }
            #expect(error?.code == .decoding)
            return (row, error)
        }
    }

    @Test("a name the result does not have is an error that names it and lists the columns")
    func unknownName() async throws {
        let (_, error) = try await Self.decodingError(Int.self, "identifier", in: "SELECT 1 AS id, 'x' AS label")
        #expect(error?.message.contains("\"identifier\"") == true)
        #expect(error?.message.contains("\"id\", \"label\"") == true)
    }

    @Test("NULL read into a non-optional is an error that names the column")
    func nullIntoNonOptional() async throws {
        let (row, error) = try await Self.decodingError(String.self, "first_name", in: "SELECT 1 AS id, NULL::text AS first_name")
        #expect(error?.message.contains("\"first_name\" is NULL") == true)
        #expect(try row.decode(String?.self, "first_name") == nil)
    }

    @Test("a name two columns share is an error rather than either column's value")
    func ambiguousName() async throws {
        let (row, error) = try await Self.decodingError(Int.self, "id", in: "SELECT 1 AS id, 2 AS id, 3 AS other")
        #expect(error?.message.contains("more than one column is named \"id\"") == true)
        #expect(try row.decode(Int.self, "other") == 3)
    }
}
