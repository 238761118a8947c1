/// The rows a statement returned, copied out of libpq's result as Sendable values.
public struct PostgresRows: Sendable, RandomAccessCollection {
    /// The result's column names and their lookup table, shared by every row.
    public let columnTable: PostgresColumns
    /// Column names in order.
    public var columns: [String] { columnTable.names }
    /// Row-major values; nil is NULL.
    let values: [String?]
    /// Rows changed by an INSERT/UPDATE/DELETE (`PQcmdTuples`), 0 when not applicable.
    public let affectedRows: Int

    init(columns: [String], values: [String?], affectedRows: Int) {
        self.columnTable = PostgresColumns(columns)
        self.values = values
        self.affectedRows = affectedRows
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { columnTable.names.isEmpty ? 0 : values.count / columnTable.names.count }
    public subscript(position: Int) -> PostgresRow {
        let width = columnTable.names.count
        return PostgresRow(columnTable: columnTable, values: values[position * width ..< (position + 1) * width])
    }
}

/// One row. Decode columns by name (what Herald's stores do: the SQL's column names and `AS`
/// aliases say what each value is), or by position:
/// ```swift
/// let email = try row.decode(String?.self, "email")
/// let id = try row.decode(Int64.self, at: 0)
/// ```
public struct PostgresRow: Sendable {
    /// The result's column names and their lookup table.
    public let columnTable: PostgresColumns
    let values: ArraySlice<String?>

    /// Column names in order.
    public var columns: [String] { columnTable.names }

    /// The raw text of column `index`, nil for NULL.
    public func text(at index: Int) -> String? { values[values.startIndex + index] }

    /// Decodes column `index` as `type`.
    /// - Throws: ``PostgresError`` with code `.decoding` naming the column.
    public func decode<T: PostgresDecodable>(_ type: T.Type, at index: Int) throws(PostgresError) -> T {
        guard index >= 0, index < columns.count else {
            throw PostgresError(code: .decoding, message: "column index \(index) is out of range (\(columns.count) columns)")
        }
        do {
            return try T.decode(postgresText: values[values.startIndex + index])
        } catch {
            switch error {
            case .unexpectedNull:
                throw PostgresError(code: .decoding, message: "column \"\(columns[index])\" is NULL; decode it as \(T.self)? instead")
            case let .invalid(text, typeName):
                throw PostgresError(code: .decoding, message: "column \"\(columns[index])\": cannot read \"\(text)\" as \(typeName)")
            }
        }
    }

    /// Decodes the column named `name` as `type`.
    /// - Throws: ``PostgresError`` with code `.decoding` when no column (or more than one) has
    ///   that name, or the value does not decode as `type`, naming the column.
    public func decode<T: PostgresDecodable>(_ type: T.Type, _ name: String) throws(PostgresError) -> T {
        try decode(type, at: columnTable.position(of: name))
    }
}
