/// Server settings a Herald session applies right after connecting, suited to the process that
/// owns it, so that no session can hang on or hold something for long.
///
/// - `statement_timeout`: a statement stuck behind a lock or on a pathological plan ends with an
///   error instead of holding a worker lane (and the lease of its batch) for hours.
/// - `idle_in_transaction_session_timeout`: a session that opened a transaction and went silent
///   (a paused or hung process) is ended, releasing its locks and the xmin horizon vacuum needs.
/// - `lock_timeout`: for migrations, which take heavy locks: waiting behind a long transaction
///   would queue every other statement on the table behind the migration.
/// - `idle_session_timeout`: for the scheduler, whose session-level advisory lock is its
///   leadership: a leader process that stops answering (SIGSTOP, a long stall) leaves its session
///   idle, the server ends it after this long, and a standby takes the lock. The leader's loop is
///   never idle for more than its maintenance interval (1 s), so a live leader is never cut off.
/// - Server-side TCP keepalives (`tcp_keepalives_*`, `tcp_user_timeout`): the server notices a
///   client whose host or network vanished within about 11 s and ends its session (releasing its
///   locks, the scheduler's leadership included), where the kernel defaults take two hours.
///
/// A setting that `DATABASE_URL`'s `options` (or `PGOPTIONS`) already sets is left as ops chose it.
public struct PostgresSessionSettings: Sendable, Equatable {
    /// nil leaves the server's (or the role's) value; `.zero` turns the timeout off.
    public var statementTimeout: Duration?
    public var idleInTransactionSessionTimeout: Duration?
    public var lockTimeout: Duration?
    public var idleSessionTimeout: Duration?
    /// Server-side keepalive probes: first after `idle` seconds, then every `interval`, `count`
    /// times; unacknowledged data is given up after `userTimeout`.
    public var serverKeepalives: TCPKeepalives?

    public init(statementTimeout: Duration? = nil, idleInTransactionSessionTimeout: Duration? = nil,
                lockTimeout: Duration? = nil, idleSessionTimeout: Duration? = nil,
                serverKeepalives: TCPKeepalives? = .default) {
        self.statementTimeout = statementTimeout
        self.idleInTransactionSessionTimeout = idleInTransactionSessionTimeout
        self.lockTimeout = lockTimeout
        self.idleSessionTimeout = idleSessionTimeout
        self.serverKeepalives = serverKeepalives
    }

    /// Workers, webhooks, reports: statements take milliseconds; two minutes is a generous
    /// ceiling that still frees a stuck lane long before its lease matters twice.
    public static let `default` = PostgresSessionSettings(
        statementTimeout: .seconds(120), idleInTransactionSessionTimeout: .seconds(60))

    /// The scheduler: expansion chunks may take longer than a worker's statements; the session
    /// carries leadership, so an idle (stopped) leader is cut off after 10 s.
    public static let scheduler = PostgresSessionSettings(
        statementTimeout: .seconds(300), idleInTransactionSessionTimeout: .seconds(60),
        idleSessionTimeout: .seconds(10))

    /// `herald migrate`: no statement timeout (a migration may rewrite a big table), but a lock
    /// waited for more than 5 s fails the migration instead of stalling production traffic behind it.
    public static let migration = PostgresSessionSettings(
        statementTimeout: .zero, idleInTransactionSessionTimeout: .seconds(60), lockTimeout: .seconds(5))

    /// TCP keepalive timing, used for libpq's client-side parameters and the server's settings.
    public struct TCPKeepalives: Sendable, Equatable {
        public var idle: Int
        public var interval: Int
        public var count: Int
        /// Milliseconds.
        public var userTimeoutMilliseconds: Int

        /// A dead peer noticed within idle + interval × count = 11 s.
        public static let `default` = TCPKeepalives(idle: 5, interval: 2, count: 3, userTimeoutMilliseconds: 10_000)
    }

    /// The `SET` statements, leaving out any parameter named in `options` (libpq's `options`
    /// connection parameter, e.g. `-c statement_timeout=0`).
    func statements(skipping options: String) -> [String] {
        var pairs: [(String, String)] = []
        func ms(_ d: Duration) -> String {
            let (s, atto) = d.components
            let total = max(0, s) &* 1000 &+ atto / 1_000_000_000_000_000
            return "\(min(total, Int64(Int32.max)))"
        }
        if let statementTimeout { pairs.append(("statement_timeout", ms(statementTimeout))) }
        if let idleInTransactionSessionTimeout { pairs.append(("idle_in_transaction_session_timeout", ms(idleInTransactionSessionTimeout))) }
        if let lockTimeout { pairs.append(("lock_timeout", ms(lockTimeout))) }
        if let idleSessionTimeout { pairs.append(("idle_session_timeout", ms(idleSessionTimeout))) }
        if let k = serverKeepalives {
            pairs += [("tcp_keepalives_idle", "\(k.idle)"), ("tcp_keepalives_interval", "\(k.interval)"),
                      ("tcp_keepalives_count", "\(k.count)"), ("tcp_user_timeout", "\(k.userTimeoutMilliseconds)")]
        }
        return pairs.filter { !options.contains($0.0) }.map { "SET \($0.0) = \($0.1)" }
    }
}
