/// A SQL statement whose interpolated values become `$n` parameters.
///
/// Values never become part of the SQL text, so injection is impossible by construction:
/// ```swift
/// let q: PostgresQuery = "SELECT id FROM herald.contacts WHERE email = \(email)"
/// // sql: "SELECT id FROM herald.contacts WHERE email = $1", binds: [email]
/// ```
/// Parameters travel in PostgreSQL's text format with unspecified types, so the server infers
/// each one from its context; add a cast (`\(ids)::bigint[]`) where the context is ambiguous.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// The statement with `$1`, `$2`, … placeholders.
    public var sql: String
    /// Parameter values in text format; nil is SQL NULL.
    public var binds: [String?]

    /// A statement with explicit placeholders and values, for SQL built from trusted constants.
    public init(unsafeSQL sql: String, binds: [String?] = []) {
        self.sql = sql
        self.binds = binds
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
    }

    /// The SQL text only; parameter values are never printed.
    public var description: String { sql }

    public struct StringInterpolation: StringInterpolationProtocol {
        @usableFromInline var sql = ""
        @usableFromInline var binds: [String?] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        /// Appends `value` as the next `$n` parameter. Inlinable, so that encoding a concrete
        /// type (a batch's arrays, above all) is specialized where the query is written.
        @inlinable
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value.postgresText)
            sql += "$\(binds.count)"
        }

        /// Appends an optional value as the next `$n` parameter (nil is NULL).
        @inlinable
        public mutating func appendInterpolation<T: PostgresEncodable>(_ value: T?) {
            binds.append(value.flatMap { $0.postgresText })
            sql += "$\(binds.count)"
        }

        /// Appends trusted SQL text (an identifier or keyword chosen by Herald's code, never user input).
        public mutating func appendInterpolation(unescaped text: String) {
            sql += text
        }
    }
}
