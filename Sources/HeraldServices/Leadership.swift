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
/// - Several leaders can never act at once, and a dead leader needs no timeout to be replaced.
public struct Leadership: Sendable {
    /// The advisory lock key: "herald_s" in ASCII, distinct from the migrator's.
    public static let schedulerLockKey: Int64 = 0x6865_7261_6c64_5f73

    public var key: Int64
    /// How often a standby tries to take the lock.
    public var retryInterval: Duration

    public init(key: Int64 = Leadership.schedulerLockKey, retryInterval: Duration = .seconds(1)) {
        self.key = key
        self.retryInterval = retryInterval
    }

    /// Returns once `store`'s session holds the lock.
    /// - Throws: `CancellationError` when the task is cancelled; ``PostgresError`` when the session
    ///   breaks (reconnect and call again).
    public func acquire(on store: SchedulerStore, logger: Logger) async throws {
        var announced = false
        while true {
            if try await store.tryLeadership(key: key) { return }
            if !announced {
                logger.debug("another scheduler is leading; standing by")
                announced = true
            }
            try await Task.sleep(for: retryInterval)
        }
    }
}
