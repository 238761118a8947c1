import CLibPQ

/// An error from PostgreSQL or from libpq, with the server's diagnostics when there are any.
///
/// `description` is one line meant for a human (and for stderr): the code, SQLSTATE and the
/// server's message, never parameter values nor the server's `DETAIL`, which for a constraint
/// violation quotes the offending row's key values (addresses, names). ``debugDescription`` adds
/// the detail and hint, for debug-level logs only.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let raw: String
        /// The connection string could not be parsed.
        public static let invalidConnectionString = Code(raw: "invalid connection string")
        /// Connecting or authenticating failed.
        public static let connectionFailed = Code(raw: "connection failed")
        /// An established connection broke (server restarted, network lost). Make a fresh one.
        public static let connectionLost = Code(raw: "connection lost")
        /// The connection was closed by Herald itself.
        public static let connectionClosed = Code(raw: "connection closed")
        /// The server rejected a statement; see ``PostgresError/sqlState``.
        public static let server = Code(raw: "server error")
        /// A value could not be decoded into the requested Swift type.
        public static let decoding = Code(raw: "decoding error")
        /// libpq misbehaved or returned something unexpected.
        public static let client = Code(raw: "client error")
        public var description: String { raw }
    }

    public var code: Code
    /// Five-character SQLSTATE, e.g. `23505` for a unique violation; nil for client-side errors.
    public var sqlState: String?
    /// The primary message (server's `MESSAGE` field or libpq's error text).
    public var message: String
    public var detail: String?
    public var hint: String?

    public var description: String {
        var s = "\(code)"
        if let sqlState { s += " \(sqlState)" }
        s += ": \(message)"
        return s
    }

    /// ``description`` with the server's detail and hint, which may quote row values.
    public var debugDescription: String {
        var s = description
        if let detail, !detail.isEmpty { s += " (detail: \(detail))" }
        if let hint, !hint.isEmpty { s += " (hint: \(hint))" }
        return s
    }

    /// True for the SQLSTATE classes that say the statement may succeed if tried again:
    /// serialization failures, deadlocks, and lost connections.
    public var isTransient: Bool {
        if code == .connectionLost || code == .connectionFailed { return true }
        guard let sqlState else { return false }
        return sqlState == "40001" || sqlState == "40P01" || sqlState.hasPrefix("08") || sqlState == "57P01"
    }

    /// True when the statement failed because of the data it met, not the connection or the
    /// server's state: SQLSTATE class 22 (data exception: a value out of range, an invalid
    /// cast, `cannot subtract infinite timestamps`), class 23 (integrity constraint violation),
    /// or a value Herald could not decode. Trying the same statement on the same rows again
    /// gives the same error, so the row at fault should be set aside (failed with the reason),
    /// not retried forever.
    public var isDataError: Bool {
        if code == .decoding { return true }
        guard code == .server, let sqlState else { return false }
        return sqlState.hasPrefix("22") || sqlState.hasPrefix("23")
    }
}

extension PostgresError {
    /// Builds an error from a failed result, reading the server's diagnostic fields.
    static func from(result: OpaquePointer?, connection: OpaquePointer?) -> PostgresError {
        func field(_ f: CChar) -> String? {
            guard let result, let p = PQresultErrorField(result, Int32(f)) else { return nil }
            return String(cString: p)
        }
        let sqlState = field(CChar(UInt8(ascii: "C")))
        let primary = field(CChar(UInt8(ascii: "M")))
        if let primary {
            return PostgresError(code: .server, sqlState: sqlState, message: primary,
                                 detail: field(CChar(UInt8(ascii: "D"))), hint: field(CChar(UInt8(ascii: "H"))))
        }
        let text = connection.map { lastLine(PQerrorMessage($0)) } ?? "unknown libpq error"
        if let connection, PQstatus(connection) != CONNECTION_OK {
            return PostgresError(code: .connectionLost, message: text.isEmpty ? "connection to the server was lost" : text)
        }
        return PostgresError(code: .client, sqlState: sqlState, message: text)
    }

    /// libpq's error messages end in a newline and may hold several lines; keep them on one line.
    static func lastLine(_ p: UnsafePointer<CChar>?) -> String {
        guard let p else { return "" }
        return String(cString: p)
            .split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: " \t") }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
