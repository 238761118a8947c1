import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders

/// How a ``SchedulerService`` runs.
public struct SchedulerConfiguration: Sendable {
    /// libpq connection string or URI; nil uses libpq's `PG*` variables.
    public var connectionString: String?
    /// Contact ids per expansion chunk: each chunk is one statement (one short transaction)
    /// covering the audience members with ids in `[first, first + expansionChunk)`.
    public var expansionChunk: Int64
    /// How often finished and cancelled broadcasts are looked for.
    public var maintenanceInterval: Duration
    /// Leadership among several schedulers.
    public var leadership: Leadership
    /// Delay between attempts to reach the database after a failure.
    public var reconnectBackoff: Backoff
    /// Shown in `pg_stat_activity`.
    public var applicationName: String
    /// The secrets channel settings name, read by validation exactly as a worker reads them: a
    /// broadcast starts only if a worker with the same environment can send it.
    public var providerEnvironment: ProviderEnvironment
    /// The leader's session settings. ``PostgresSessionSettings/scheduler`` ends a session idle
    /// for 10 s: a leader that stops answering (SIGSTOP, a stall) loses the lock within about
    /// that long, and a standby takes over within ``Leadership/retryInterval`` after (see
    /// ``Leadership``). The leader's loop never idles for longer than ``maintenanceInterval``,
    /// which must stay well below that timeout.
    public var session: PostgresSessionSettings = .scheduler
    /// Keeps `templates` in step with Meta while this scheduler leads; nil: not at all.
    public var templateSync: TemplateSyncSchedule? // templates (issue 18)

    /// When a broadcast's jobs become claimable: from its first chunk (streaming, the default) or
    /// only once its whole audience is expanded.
    public var claimable: Claimable = .fromFirstChunk(SchedulerConfiguration.defaultFirstExpansionChunk)

    public static let defaultExpansionChunk: Int64 = 50_000
    /// Contact ids of a broadcast's first chunk when streaming: small, so its first messages go
    /// out within a moment of its start (2,000 contacts take milliseconds to expand) while the
    /// rest is expanded in full chunks.
    public static let defaultFirstExpansionChunk: Int64 = 2_000

    /// When a broadcast's jobs become claimable (workers claim only jobs of `sending` broadcasts).
    public enum Claimable: Sendable, Equatable {
        /// Streaming: the first chunk, of at most this many contact ids (and at most
        /// ``expansionChunk``), flips the broadcast to `sending`; the rest of the audience is
        /// expanded while workers already send.
        case fromFirstChunk(Int64)
        /// The broadcast stays `scheduled` until its whole audience is expanded, then flips to
        /// `sending`: Herald's behaviour before streaming, kept as the benchmark's baseline
        /// (`herald scheduler --first-expansion-chunk 0`).
        case afterWholeExpansion

        /// The size of the chunk that starts an expansion, given the full chunk size.
        func firstChunk(full: Int64) -> Int64 {
            switch self {
            case .fromFirstChunk(let size): min(full, max(1, size))
            case .afterWholeExpansion: full
            }
        }
    }

    /// ``session`` with its idle timeout raised, if need be, to three times the longest idle
    /// stretch this configuration allows (``maintenanceInterval``, the standby's retry interval),
    /// so a live scheduler's session is never ended for idling.
    var effectiveSession: PostgresSessionSettings {
        var s = session
        if let idle = s.idleSessionTimeout, idle > .zero {
            s.idleSessionTimeout = max(idle, max(maintenanceInterval, leadership.retryInterval) * 3)
        }
        return s
    }

    public init(connectionString: String?, expansionChunk: Int64 = SchedulerConfiguration.defaultExpansionChunk,
                maintenanceInterval: Duration = .seconds(1), leadership: Leadership = Leadership(),
                reconnectBackoff: Backoff = Backoff(base: .milliseconds(250), cap: .seconds(5)),
                applicationName: String = "herald-scheduler",
                providerEnvironment: ProviderEnvironment = ProviderEnvironment(variables: ProcessInfo.processInfo.environment)) {
        self.connectionString = connectionString
        self.expansionChunk = max(1, expansionChunk)
        self.maintenanceInterval = maintenanceInterval
        self.leadership = leadership
        self.reconnectBackoff = reconnectBackoff
        self.applicationName = applicationName
        self.providerEnvironment = providerEnvironment
    }
}
