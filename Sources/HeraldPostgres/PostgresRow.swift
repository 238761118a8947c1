/// The rows a statement returned, copied out of libpq's result as Sendable values.
public struct PostgresRows: Sendable, RandomAccessCollection {
    /// Column names in order.
    public let columns: [String]
    /// Row-major values; nil is NULL.
    let values: [String?]
    /// Rows changed by an INSERT/UPDATE/DELETE (`PQcmdTuples`), 0 when not applicable.
    public let affectedRows: Int

    init(columns: [String], values: [String?], affectedRows: Int) {
        self.columns = columns
        self.values = values
        self.affectedRows = affectedRows
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { columns.isEmpty ? 0 : values.count / columns.count }
    public subscript(position: Int) -> PostgresRow {
        PostgresRow(columns: columns, values: values[position * columns.count ..< (position + 1) * columns.count])
    }
}

/// One row. Decode columns by position or by name:
/// ```swift
/// let id = try row.decode(Int64.self, at: 0)
/// let email = try row.decode(String?.self, "email")
/// ```
public struct PostgresRow: Sendable {
    public let columns: [String]
    let values: ArraySlice<String?>

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
    public func decode<T: PostgresDecodable>(_ type: T.Type, _ name: String) throws(PostgresError) -> T {
        guard let index = columns.firstIndex(of: name) else {
            throw PostgresError(code: .decoding, message: "no column named \"\(name)\"")
        }
        return try decode(type, at: index)
    }
}
