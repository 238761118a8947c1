import HeraldCore
import HeraldPostgres
import HeraldStore
import Logging

/// Which of several `herald scheduler` processes acts: the one whose database session holds a
/// session-level advisory lock.
///
/// - The lock lives as long as the session: when the leader's process dies (even SIGKILL), its
///   socket closes, PostgreSQL ends the session and frees the lock, and a standby, retrying
///   `pg_try_advisory_lock` every ``retryInterval``, takes over within about that long.
/// - The leader runs all its statements on that same session. If the connection breaks, its
///   statements fail with it and the lock is gone at the same moment, so a leader that lost its
///   lock cannot keep writing: it reconnects and competes again like any standby.
/// - A leader that stops answering without dying (SIGSTOP, a stalled host, a half-open network
///   path) keeps its socket open, so the lock would stay with it. Its session is bounded instead
///   (``PostgresSessionSettings/scheduler``): the server ends it once it has been idle for 10 s
///   (`idle_session_timeout`; a live leader's loop is never idle longer than its 1 s maintenance
///   interval) or, when the leader's host or network is gone, once the server's TCP keepalives
///   fail (5 s + 3 × 2 s) or unacknowledged data times out (`tcp_user_timeout`, 10 s). The lock
///   goes with the session. **Bound: a standby leads within about 12 s** of the leader going
///   silent (the timeout plus ``retryInterval``); `SchedulerFailoverTests` measures it with a
///   SIGSTOPped leader. When the stopped leader resumes, its next statement finds the session
///   gone, and it competes again as a standby: it never acts without the lock.
/// - Several leaders can never act at once: every statement of the leader runs on the session
///   that holds the lock.
public struct Leadership: Sendable {
    /// The advisory lock key: "herald_s" in ASCII, distinct from the migrator's.
    public static let schedulerLockKey: Int64 = 0x6865_7261_6c64_5f73

    public var key: Int64
    /// How often a standby tries to take the lock. Keep it well below the session's
    /// `idle_session_timeout` (10 s), or standbys' sessions are ended between tries.
    public var retryInterval: Duration

    public init(key: Int64 = Leadership.schedulerLockKey, retryInterval: Duration = .seconds(1)) {
        self.key = key
        self.retryInterval = retryInterval
    }

    /// Returns once `store`'s session holds the lock.
    /// - Parameter clock: what the waits between tries run on (the scheduler's clock).
    /// - Throws: `CancellationError` when the task is cancelled; ``PostgresError`` when the session
    ///   breaks (reconnect and call again).
    public func acquire(on store: SchedulerStore, logger: Logger, clock: any HeraldClock = ContinuousClock()) async throws {
        var announced = false
        while true {
            if try await store.tryLeadership(key: key) { return }
            if !announced {
                logger.debug("another scheduler is leading; standing by")
                announced = true
            }
            try await clock.sleep(for: retryInterval)
        }
    }
}
