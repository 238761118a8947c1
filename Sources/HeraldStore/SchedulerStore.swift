import HeraldCore
import HeraldPostgres

/// Every SQL statement the scheduler runs: due broadcasts, validation input, audience expansion,
/// the `scheduled` → `sending` flip, finishing, and the clean-up of cancelled broadcasts. Split by
/// job: this file (due broadcasts, start, finish, clean-up, leadership),
/// `SchedulerStoreDefinition.swift` (validation input, failing), `SchedulerStoreExpansion.swift`
/// (chunks), `SchedulerStoreAudience.swift` (the audience SQL shared with `herald preview`) and
/// `SchedulerStoreFaults.swift` (unreachable `send_at`, edits of running broadcasts).
///
/// **Guards.** Each write carries the status it expects in its `WHERE` clause
/// (`AND status = 'scheduled'`, `AND status = 'sending'`, …), so a status the admin tool wrote
/// meanwhile always wins: Herald's statement then simply matches nothing.
///
/// **Time.** Every decision about time uses PostgreSQL's `now()`, the one clock that all
/// `herald` processes share; the scheduler process's own clock is only used to sleep.
///
/// **Abandoned claims.** Nothing here rescues jobs whose worker died: a claim moves a job's
/// `run_at` to the end of its lease, and the worker's claim query takes any job with
/// `run_at <= now()`, so an expired lease is claimable again by itself (see
/// `0002_messages_and_jobs.sql`). One place, not two.
public struct SchedulerStore: Sendable {
    /// The connection every statement runs on (the scheduler's leadership session).
    public let connection: PostgresConnection

    public init(_ connection: PostgresConnection) {
        self.connection = connection
    }

    // MARK: Due broadcasts

    /// A `scheduled` broadcast whose start time (`starts_at`: `send_at`, or with `local_send_at`
    /// the first recipient's due instant) is null or past, or one whose expansion is under way.
    public struct DueBroadcast: Sendable, Equatable {
        public var id: Int64
        /// The highest contact id already expanded, nil before the first chunk.
        public var expansionCursor: Int64?
        /// `local_send_at`: each recipient is due at send_at's wall-clock time in their own zone.
        public var localSendAt: Bool

        public init(id: Int64, expansionCursor: Int64?, localSendAt: Bool = false) {
            self.id = id
            self.expansionCursor = expansionCursor
            self.localSendAt = localSendAt
        }
    }

    /// The `scheduled` broadcasts that are due now, and the `sending` or `paused` ones whose
    /// expansion is under way (streaming: they flip to `sending` at their first chunk, which sets
    /// `expansion_cursor`; `expanded_at` marks its end), oldest `send_at` first (null counts as
    /// oldest). One with an edit waiting for re-validation (`definition_changed_at`) waits too:
    /// its next chunk is written with the definition the leader accepted.
    ///
    /// Due means `starts_at` (kept by a trigger of `0011_delivery_timing.sql`) is null or past:
    /// `send_at` itself, except with `local_send_at`, where it starts at a bound of the first
    /// recipient's instant that ``postponeToEarliestZone(_:)`` then narrows.
    public func dueBroadcasts(limit: Int = 100) async throws -> [DueBroadcast] {
        let rows = try await connection.query("""
            SELECT id, expansion_cursor, local_send_at
            FROM herald.broadcasts
            WHERE (status = 'scheduled' AND (starts_at IS NULL OR starts_at <= now()))
               OR (status IN ('sending', 'paused') AND expanded_at IS NULL AND expansion_cursor IS NOT NULL
                   AND definition_changed_at IS NULL)
            ORDER BY starts_at NULLS FIRST, id
            LIMIT \(limit)
            """)
        return try rows.map {
            DueBroadcast(id: try $0.decode(Int64.self, "id"), expansionCursor: try $0.decode(Int64?.self, "expansion_cursor"),
                         localSendAt: try $0.decode(Bool.self, "local_send_at"))
        }
    }

    /// How long until the next `scheduled` broadcast falls due, by the database's clock; nil when
    /// none is scheduled for later.
    ///
    /// Only finite times count: a `send_at` of `'infinity'` (possible in rows written before
    /// migration 0008's check) would make the subtraction fail and, with it, the leader's whole
    /// session; such a broadcast is failed by ``failUnreachableSendAt()`` instead. The result is
    /// at most an hour (the caller sleeps no longer than its maintenance interval anyway).
    public func timeUntilNextSendAt() async throws -> Duration? {
        let rows = try await connection.query("""
            SELECT extract(epoch FROM min(starts_at) - now())::float8 AS seconds
            FROM herald.broadcasts
            WHERE status = 'scheduled' AND starts_at > now() AND isfinite(starts_at)
            """)
        guard let seconds = try rows.first?.decode(Double?.self, "seconds") else { return nil }
        // Rounded up, so a sleep of this length never wakes just before the broadcast is due.
        return .clampedMilliseconds((seconds * 1000).rounded(.up)) + .milliseconds(1)
    }

    /// For a `local_send_at` broadcast that became due by its bound (`send_at`'s wall clock at
    /// UTC+14, which needs no look at the audience): moves `starts_at` to the earliest due
    /// instant among the zones actually present in its audience, when that is later.
    ///
    /// One scan of the audience's distinct zones, done when the bound is reached and once more
    /// when the narrowed instant is (it then changes nothing). Contacts added to the audience
    /// afterwards in a zone further east are sent at the start found here, not earlier.
    /// - Returns: true when the broadcast was postponed (not due yet); false when it is due now
    ///   (or no longer `scheduled`, or its broadcast zone is unknown: validation reports that).
    public func postponeToEarliestZone(_ id: Int64) async throws -> Bool {
        let rows = try await connection.query("""
            WITH b AS (
                SELECT id, send_at, coalesce(time_zone, 'UTC') AS zone, starts_at
                FROM herald.broadcasts
                WHERE id = \(id) AND status = 'scheduled' AND local_send_at AND send_at IS NOT NULL
                  AND herald.time_zone_known(coalesce(time_zone, 'UTC'))
            ), zones AS (
                SELECT DISTINCT c.time_zone
                FROM (SELECT gm.contact_id FROM herald.broadcast_groups bg
                      JOIN herald.group_members gm ON gm.group_id = bg.group_id
                      WHERE bg.broadcast_id = \(id)
                      UNION
                      SELECT bc.contact_id FROM herald.broadcast_contacts bc WHERE bc.broadcast_id = \(id)) au
                JOIN herald.contacts c ON c.id = au.contact_id
            ), earliest AS (
                SELECT min(herald.local_due_at(b.send_at, b.zone,
                           CASE WHEN herald.time_zone_known(z.time_zone) THEN z.time_zone ELSE b.zone END)) AS at
                FROM b CROSS JOIN zones z
            )
            UPDATE herald.broadcasts x SET starts_at = e.at
            FROM b, earliest e
            WHERE x.id = b.id AND x.status = 'scheduled' AND x.starts_at IS NOT DISTINCT FROM b.starts_at
              AND e.at > now() AND e.at > b.starts_at
            RETURNING x.id
            """)
        return !rows.isEmpty
    }

    // MARK: Start and finish

    /// Records that a broadcast's expansion is complete (`expanded_at`), flips it to `sending` if
    /// no chunk did yet, and wakes the workers (`NOTIFY herald_jobs`, payload: the broadcast id),
    /// in one statement. From then on ``completeFinished()`` may complete it.
    /// - Returns: false when it was no longer being expanded (cancelled or failed meanwhile: the
    ///   admin tool's change wins; maintenance ends its unsent messages).
    /// - Parameter warning: written to `error` when given (a broadcast that starts with a caveat,
    ///   e.g. contacts with an unknown time zone).
    public func finishExpansion(_ id: Int64, warning: String? = nil) async throws -> Bool {
        let rows = try await connection.query("""
            WITH started AS (
                UPDATE herald.broadcasts
                SET status = CASE WHEN status = 'scheduled' THEN 'sending' ELSE status END,
                    started_at = coalesce(started_at, now()), expanded_at = now(),
                    error = coalesce(\(warning), error)
                WHERE id = \(id) AND expanded_at IS NULL
                  AND (status = 'scheduled' OR (status IN ('sending', 'paused') AND expansion_cursor IS NOT NULL))
                RETURNING id, status
            )
            SELECT count(*) AS finished,
                   (SELECT count(pg_notify('herald_jobs', s.id::text)) FROM started s WHERE s.status = 'sending') AS notified
            FROM started
            """)
        return try rows[0].decode(Int.self, "finished") == 1
    }

    // MARK: Life cycle maintenance

    /// Marks `completed` every `sending` broadcast whose expansion finished and that has no job
    /// left (every message reached an end state).
    /// - Returns: the ids completed.
    public func completeFinished() async throws -> [Int64] {
        let rows = try await connection.query("""
            UPDATE herald.broadcasts b SET status = 'completed', finished_at = now()
            WHERE b.status = 'sending' AND b.expanded_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM herald.jobs j WHERE j.broadcast_id = b.id)
            RETURNING b.id
            """)
        return try rows.map { try $0.decode(Int64.self, "id") }
    }

    /// Ends up to `limit` unsent messages of `cancelled` and `failed` broadcasts and deletes their
    /// jobs, in one statement: a cancelled broadcast's as `cancelled`; a failed one's (an edit that
    /// failed validation, a broadcast a worker could not prepare) as `failed`, with the
    /// broadcast's `error` and `failed_at`, as the contract says of a broadcast that can no
    /// longer be sent.
    ///
    /// A job held under a live lease (`lease_owner` set, `run_at > now()`) is left alone: its
    /// worker records the outcome. Once that lease expires unrecorded, a later call takes it.
    /// Rows another transaction has locked are skipped (`SKIP LOCKED`), never waited for.
    /// - Returns: how many messages were ended; call again while it returns `limit`.
    public func endUnsent(limit: Int = 10_000) async throws -> Int {
        let rows = try await connection.query("""
            WITH doomed AS (
                SELECT j.message_id, b.status AS broadcast_status, b.error AS broadcast_error
                FROM herald.broadcasts b
                JOIN herald.jobs j ON j.broadcast_id = b.id
                WHERE b.status IN ('cancelled', 'failed')
                  AND NOT (j.lease_owner IS NOT NULL AND j.run_at > now())
                LIMIT \(limit)
                FOR UPDATE OF j SKIP LOCKED
            ), gone AS (
                DELETE FROM herald.jobs j USING doomed d
                WHERE j.message_id = d.message_id
                RETURNING j.message_id
            ), ended AS (
                UPDATE herald.messages m
                SET status = CASE WHEN d.broadcast_status = 'failed' THEN 'failed' ELSE 'cancelled' END,
                    error = CASE WHEN d.broadcast_status = 'failed'
                                 THEN coalesce('broadcast failed: ' || d.broadcast_error, 'broadcast failed') ELSE m.error END,
                    failed_at = CASE WHEN d.broadcast_status = 'failed' THEN now() ELSE m.failed_at END
                FROM gone g JOIN doomed d ON d.message_id = g.message_id
                WHERE m.id = g.message_id AND m.status = 'queued'
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM gone) AS jobs_ended, (SELECT count(*) FROM ended) AS messages_ended
            """)
        return try rows[0].decode(Int.self, "jobs_ended")
    }

    // MARK: Leadership

    /// Tries to take the session-level advisory lock that makes this session the acting scheduler.
    /// - Returns: true when this session holds it (again).
    public func tryLeadership(key: Int64) async throws -> Bool {
        try await connection.query("SELECT pg_try_advisory_lock(\(key)) AS taken")[0].decode(Bool.self, "taken")
    }
}
