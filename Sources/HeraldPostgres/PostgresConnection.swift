import CLibPQ
import Foundation
import Glibc
import Logging

/// One PostgreSQL connection through libpq.
///
/// Everything that touches the `PGconn*` is isolated to this actor: statements, pipelines and
/// results here; LISTEN/NOTIFY in `PostgresNotifications.swift`.
///
/// **Threading model.** The connection is an actor whose executor is a dedicated OS thread
/// (``ThreadExecutor``). libpq's calls block; here they only ever block that thread, never Swift's
/// cooperative pool. Callers `await` the actor; calls run one at a time, in order.
///
/// **One task at a time.** A connection is a session: a transaction, a pipeline or a `LISTEN`
/// belongs to whoever holds it. Share connections through ``PostgresPool``, not directly.
///
/// **Failures.** Every failure throws ``PostgresError``: server errors carry SQLSTATE, message and
/// detail; a broken connection throws `.connectionLost`, after which ``isUsable`` is false and a
/// fresh connection must be made (the pool does this).
public actor PostgresConnection {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private var connection: PGHandle?
    private var handle: OpaquePointer? { connection?.raw }
    /// An eventfd that interrupts a blocking wait for notifications (cancellation, ``interrupt()``).
    nonisolated let wakeFD: Int32
    private let logger: Logger
    /// Statements prepared on this session by ``preparedQuery(_:)``: SQL text → statement name.
    private var preparedStatements: [String: String] = [:]
    private var preparedCount = 0

    private init(logger: Logger) {
        self.executor = ThreadExecutor(name: "herald-pg")
        self.wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        self.logger = logger
    }

    deinit {
        Glibc.close(wakeFD)
        executor.stop()
    }

    /// Opens a connection.
    ///
    /// - Parameters:
    ///   - connectionString: a libpq connection string (`host=… dbname=…`) or URI
    ///     (`postgresql://user@host:5432/db`); nil or empty uses libpq's `PG*` environment variables.
    ///   - applicationName: shown in `pg_stat_activity`.
    ///   - session: the timeouts this session runs with (``PostgresSessionSettings``).
    /// - Throws: ``PostgresError`` `.invalidConnectionString` when the string cannot be parsed,
    ///   `.connectionFailed` when the server cannot be reached or refuses the login.
    ///
    /// **Dead connections.** Unless the connection string says otherwise, libpq connects with TCP
    /// keepalives (first probe after 5 s idle, then every 2 s, 3 probes) and `tcp_user_timeout`
    /// 10 s: a server whose host or network vanished is noticed within about 11 s, also while a
    /// statement waits for its answer, instead of after the kernel's two hours.
    public static func connect(_ connectionString: String?, applicationName: String = "herald",
                               session: PostgresSessionSettings = .default,
                               logger: Logger = Logger(label: "herald.postgres")) async throws -> PostgresConnection {
        let connection = PostgresConnection(logger: logger)
        try await connection.open(connectionString ?? "", applicationName: applicationName, session: session)
        return connection
    }

    /// libpq connection parameters Herald sets unless the connection string sets them itself:
    /// a connect timeout, and TCP keepalives with `tcp_user_timeout` so a dead peer is noticed in seconds.
    public static let defaultConnectionParameters: [(key: String, value: String)] = {
        let k = PostgresSessionSettings.TCPKeepalives.default
        return [("connect_timeout", "10"), ("keepalives", "1"), ("keepalives_idle", "\(k.idle)"),
                ("keepalives_interval", "\(k.interval)"), ("keepalives_count", "\(k.count)"),
                ("tcp_user_timeout", "\(k.userTimeoutMilliseconds)")]
    }()

    /// Reads `DATABASE_URL` from the environment (nil when unset or empty: libpq then uses `PG*`).
    public static var environmentConnectionString: String? {
        let value = ProcessInfo.processInfo.environment["DATABASE_URL"]
        return value?.isEmpty == false ? value : nil
    }

    private func open(_ conninfo: String, applicationName: String, session: PostgresSessionSettings) throws {
        if !conninfo.isEmpty {
            var err: UnsafeMutablePointer<CChar>?
            if let options = PQconninfoParse(conninfo, &err) {
                PQconninfoFree(options)
            } else {
                let message = PostgresError.lastLine(err)
                if let err { PQfreemem(err) }
                throw PostgresError(code: .invalidConnectionString,
                                    message: "not a valid libpq connection string or URI: \(message)")
            }
        }
        // Defaults first, then the connection string (expand_dbname), so the string's own values win.
        let keys = Self.defaultConnectionParameters.map(\.key) + ["application_name", "dbname"]
        let values = Self.defaultConnectionParameters.map(\.value) + [applicationName, conninfo]
        let conn = withArrayOfCStrings(keys) { k in
            withArrayOfCStrings(values) { v in PQconnectdbParams(k, v, 1) }
        }
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let message = conn.map { PostgresError.lastLine(PQerrorMessage($0)) } ?? "out of memory"
            if let conn { PQfinish(conn) }
            throw PostgresError(code: .connectionFailed, message: message)
        }
        connection = PGHandle(raw: conn)
        // Fixed session settings the decoders rely on (UTC timestamps in ISO format), and no JIT:
        // Herald's statements are short OLTP ones, where compiling costs ~30 ms and saves nothing.
        try simpleQuery("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET client_encoding = 'UTF8'; SET extra_float_digits = 3; SET jit = off")
        let guards = session.statements(skipping: Self.optionsParameter(of: conn))
        if !guards.isEmpty { try simpleQuery(guards.joined(separator: "; ")) }
    }

    /// The `options` connection parameter in effect (from the connection string or `PGOPTIONS`).
    private static func optionsParameter(of conn: OpaquePointer) -> String {
        guard let options = PQconninfo(conn) else { return "" }
        defer { PQconninfoFree(options) }
        var p = options
        while let keyword = p.pointee.keyword {
            if String(cString: keyword) == "options", let value = p.pointee.val { return String(cString: value) }
            p += 1
        }
        return ""
    }

    /// False once the connection is closed or broken.
    public var isUsable: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// The value of a libpq connection parameter in effect for this connection (`keepalives_idle`,
    /// `tcp_user_timeout`, …): what the connection string set, else Herald's default, else libpq's.
    public func connectionParameter(_ keyword: String) -> String? {
        guard let handle, let options = PQconninfo(handle) else { return nil }
        defer { PQconninfoFree(options) }
        var p = options
        while let key = p.pointee.keyword {
            if String(cString: key) == keyword { return p.pointee.val.map { String(cString: $0) } }
            p += 1
        }
        return nil
    }

    /// The backend's process id (for `pg_terminate_backend` in tests, or logs).
    public var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    /// Closes the connection. Further calls throw `.connectionClosed`.
    public func close() {
        connection = nil
    }

    func live() throws -> OpaquePointer {
        guard let handle else { throw PostgresError(code: .connectionClosed, message: "the connection is closed") }
        return handle
    }

    // MARK: Statements

    /// Runs one parameterized statement and returns its rows.
    @discardableResult
    public func query(_ query: PostgresQuery) throws -> PostgresRows {
        let conn = try live()
        let result = withParameters(query.binds) { count, values in
            PQexecParams(conn, query.sql, count, nil, values, nil, nil, 0)
        }
        return try consume(result, conn: conn)
    }

    /// Runs one parameterized statement as a named prepared statement, prepared on this
    /// connection the first time its SQL text is seen: the server parses (and, once it settles on
    /// a generic plan, plans) it once per session instead of on every call.
    ///
    /// For the statements a connection runs over and over (a worker's claim and record): their
    /// parsing and planning cost about as much as running them (claim: ~1.1 ms of planning,
    /// ~2 ms of execution per batch of 200). Parameters must keep the same types from call to
    /// call; anything the planner must see as a constant (a `LIMIT` that sizes the plan) belongs
    /// in the SQL text (`\(unescaped:)`), which then names a separate statement.
    @discardableResult
    public func preparedQuery(_ query: PostgresQuery) throws -> PostgresRows {
        try preparedQuery(query, mayReprepare: true)
    }

    private func preparedQuery(_ query: PostgresQuery, mayReprepare: Bool) throws -> PostgresRows {
        let conn = try live()
        let name: String
        if let known = preparedStatements[query.sql] {
            name = known
        } else {
            preparedCount += 1
            name = "herald_\(preparedCount)"
            let result = PQprepare(conn, name, query.sql, Int32(query.binds.count), nil)
            _ = try consume(result, conn: conn)
            preparedStatements[query.sql] = name
        }
        let result = withParameters(query.binds) { count, values in
            PQexecPrepared(conn, name, count, values, nil, nil, 0)
        }
        do {
            return try consume(result, conn: conn)
        } catch let error as PostgresError where mayReprepare && (error.sqlState == "0A000" || error.sqlState == "26000") {
            // "cached plan must not change result type" (a migration altered a table under the
            // session) or the statement is gone (DISCARD ALL): prepare afresh, once.
            preparedStatements[query.sql] = nil
            _ = try? simpleQuery("DEALLOCATE \(name)")
            return try preparedQuery(query, mayReprepare: false)
        }
    }

    /// Runs one parameterized statement and returns the number of rows it changed.
    @discardableResult
    public func execute(_ query: PostgresQuery) throws -> Int {
        try self.query(query).affectedRows
    }

    /// Runs SQL text that may hold several statements and no parameters (migrations, `SET`).
    /// Outside an explicit transaction, the statements of one call run in one implicit transaction.
    public func simpleQuery(_ sql: String) throws {
        let conn = try live()
        var result = PQexec(conn, sql)
        var failure: PostgresError?
        while let r = result {
            let status = PQresultStatus(r)
            if status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE || status == PGRES_NONFATAL_ERROR {
                failure = failure ?? PostgresError.from(result: r, connection: conn)
            }
            PQclear(r)
            result = nil
        }
        if let failure { throw failure }
        if PQstatus(conn) != CONNECTION_OK {
            throw PostgresError(code: .connectionLost, message: PostgresError.lastLine(PQerrorMessage(conn)))
        }
    }

    /// Sends several statements in one round trip (libpq pipeline mode) and returns each one's rows.
    ///
    /// The statements run in order in one implicit transaction: if one fails, the ones before it
    /// are rolled back, the ones after it are not run, and the first error is thrown.
    /// - Important: keep a pipeline to a few hundred statements; libpq runs it in blocking mode.
    public func pipeline(_ queries: [PostgresQuery]) throws -> [PostgresRows] {
        let conn = try live()
        guard !queries.isEmpty else { return [] }
        guard PQenterPipelineMode(conn) == 1 else {
            throw PostgresError(code: .client, message: "cannot enter pipeline mode: \(PostgresError.lastLine(PQerrorMessage(conn)))")
        }
        defer { PQexitPipelineMode(conn) }
        for query in queries {
            let sent = withParameters(query.binds) { count, values in
                PQsendQueryParams(conn, query.sql, count, nil, values, nil, nil, 0)
            }
            guard sent == 1 else { throw PostgresError.from(result: nil, connection: conn) }
        }
        guard PQpipelineSync(conn) == 1 else { throw PostgresError.from(result: nil, connection: conn) }
        var outputs: [PostgresRows] = []
        var firstError: PostgresError?
        for _ in queries {
            var rows: PostgresRows?
            while let r = PQgetResult(conn) {
                let status = PQresultStatus(r)
                if status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK {
                    rows = Self.copyRows(r)
                } else if status == PGRES_PIPELINE_ABORTED {
                    // A statement before this one failed; its error is already recorded.
                } else {
                    firstError = firstError ?? PostgresError.from(result: r, connection: conn)
                }
                PQclear(r)
            }
            if PQstatus(conn) != CONNECTION_OK {
                throw PostgresError(code: .connectionLost, message: PostgresError.lastLine(PQerrorMessage(conn)))
            }
            outputs.append(rows ?? PostgresRows(columns: [], values: [], affectedRows: 0))
        }
        // The sync point's own result.
        if let r = PQgetResult(conn) { PQclear(r) }
        if let firstError { throw firstError }
        return outputs
    }

    /// Runs `body` inside `BEGIN … COMMIT`, rolling back when it throws.
    ///
    /// `body` runs isolated to this connection, so nothing else can use it meanwhile.
    public func transaction<T: Sendable>(_ body: @Sendable (isolated PostgresConnection) async throws -> T) async throws -> T {
        try simpleQuery("BEGIN")
        do {
            let value = try await body(self)
            try simpleQuery("COMMIT")
            return value
        } catch {
            if isUsable { try? simpleQuery("ROLLBACK") }
            throw error
        }
    }

    // MARK: Results

    private func consume(_ result: OpaquePointer?, conn: OpaquePointer) throws -> PostgresRows {
        guard let result else {
            if PQstatus(conn) != CONNECTION_OK {
                throw PostgresError(code: .connectionLost, message: PostgresError.lastLine(PQerrorMessage(conn)))
            }
            throw PostgresError(code: .client, message: PostgresError.lastLine(PQerrorMessage(conn)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_SINGLE_TUPLE:
            return Self.copyRows(result)
        default:
            var error = PostgresError.from(result: result, connection: conn)
            if PQstatus(conn) != CONNECTION_OK && error.code != .server { error.code = .connectionLost }
            throw error
        }
    }

    private static func copyRows(_ result: OpaquePointer) -> PostgresRows {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var columns: [String] = []
        columns.reserveCapacity(columnCount)
        for c in 0..<columnCount { columns.append(String(cString: PQfname(result, Int32(c)))) }
        var values: [String?] = []
        values.reserveCapacity(rowCount * columnCount)
        for r in 0..<rowCount {
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                }
            }
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, values: values, affectedRows: affected)
    }
}
