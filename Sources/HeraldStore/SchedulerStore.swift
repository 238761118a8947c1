import HeraldCore
import HeraldPostgres

/// Every SQL statement the scheduler runs: due broadcasts, validation input, audience expansion,
/// the `scheduled` → `sending` flip, finishing, and the clean-up of cancelled broadcasts.
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
    /// the first recipient's due instant) is null or past.
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

    /// The `scheduled` broadcasts that are due now, oldest `send_at` first (null counts as oldest).
    ///
    /// Due means `starts_at` (kept by a trigger of `0011_delivery_timing.sql`) is null or past:
    /// `send_at` itself, except with `local_send_at`, where it starts at a bound of the first
    /// recipient's instant that ``postponeToEarliestZone(_:)`` then narrows.
    public func dueBroadcasts(limit: Int = 100) async throws -> [DueBroadcast] {
        let rows = try await connection.query("""
            SELECT id, expansion_cursor, local_send_at
            FROM herald.broadcasts
            WHERE status = 'scheduled' AND (starts_at IS NULL OR starts_at <= now())
            ORDER BY starts_at NULLS FIRST, id
            LIMIT \(limit)
            """)
        return try rows.map {
            DueBroadcast(id: try $0.decode(Int64.self, at: 0), expansionCursor: try $0.decode(Int64?.self, at: 1),
                         localSendAt: try $0.decode(Bool.self, at: 2))
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
            SELECT extract(epoch FROM min(starts_at) - now())::float8
            FROM herald.broadcasts
            WHERE status = 'scheduled' AND starts_at > now() AND isfinite(starts_at)
            """)
        guard let seconds = try rows.first?.decode(Double?.self, at: 0) else { return nil }
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

    // MARK: Validation input

    /// A broadcast with its channel and template, as validation needs them.
    public struct BroadcastDefinition: Sendable {
        public var id: Int64
        public var name: String
        public var channelID: Int64
        public var subject: String?
        public var body: String?
        public var htmlBody: String?
        public var templateID: Int64?
        /// `template_params` as JSON text, nil when the column is null.
        public var templateParams: String?
        /// Nil when the channel row does not exist.
        public var channel: Channel?
        /// Nil when there is no `template_id` or the template row does not exist.
        public var template: Template?
        /// Rows of `broadcast_groups` and `broadcast_contacts`.
        public var groupCount: Int
        public var pickedCount: Int
        /// Items of `media` (0 when null).
        public var mediaCount: Int = 0
        /// The broadcast's delivery timing columns.
        public var timing: Timing = Timing()

        /// `send_window`, `local_send_at` and `time_zone` (the contract's "Delivery timing").
        public struct Timing: Sendable, Equatable {
            /// `send_window` as JSON text (its shape is checked by the table), nil when null.
            public var sendWindow: String?
            public var localSendAt: Bool
            /// `time_zone`, nil when null (UTC).
            public var timeZone: String?
            /// Whether PostgreSQL knows `time_zone` (true when it is null).
            public var timeZoneKnown: Bool

            public init(sendWindow: String? = nil, localSendAt: Bool = false, timeZone: String? = nil, timeZoneKnown: Bool = true) {
                self.sendWindow = sendWindow
                self.localSendAt = localSendAt
                self.timeZone = timeZone
                self.timeZoneKnown = timeZoneKnown
            }
        }

        /// `template_header_params`, `template_button_params` and `media` as JSON text (nil when null).
        public var templateHeaderParams: String? = nil
        public var templateButtonParams: String? = nil
        public var media: String? = nil

        public struct Channel: Sendable {
            public var id: Int64
            public var name: String
            public var kind: String
            public var provider: String
            /// `settings` as JSON text.
            public var settings: String
            public var enabled: Bool
        }

        public struct Template: Sendable {
            public var id: Int64
            public var channelID: Int64
            public var name: String
            public var language: String
            public var status: String
            public var body: String
            /// `header_format`: `none`, `text`, `image`, `video` or `document`.
            public var headerFormat: String = "none"
            /// Items of `buttons` (0 when null).
            public var buttonCount: Int = 0
            /// `header_text` (with `{{1}}` when the header takes a value).
            public var headerText: String? = nil
            /// `buttons` as JSON text.
            public var buttons: String? = nil
        }
    }

    /// Loads a broadcast for validation; nil when its status is not one of `statuses`
    /// (by default: no longer `scheduled`; nil: any status, as `herald preview` looks at drafts too).
    public func definition(of id: Int64, statuses: [String]? = ["scheduled"]) async throws -> BroadcastDefinition? {
        let rows = try await connection.query("""
            SELECT b.id, b.name, b.channel_id, b.subject, b.body, b.html_body, b.template_id,
                   b.template_params::text,
                   c.id, c.name, c.kind, c.provider, c.settings::text, c.enabled,
                   t.id, t.channel_id, t.name, t.language, t.status, t.body,
                   (SELECT count(*) FROM herald.broadcast_groups bg WHERE bg.broadcast_id = b.id),
                   (SELECT count(*) FROM herald.broadcast_contacts bc WHERE bc.broadcast_id = b.id),
                   coalesce(jsonb_array_length(b.media), 0) AS media_items,
                   t.header_format, coalesce(jsonb_array_length(t.buttons), 0) AS template_buttons,
                   b.send_window::text AS send_window, b.local_send_at, b.time_zone,
                   (b.time_zone IS NULL OR herald.time_zone_known(b.time_zone)) AS time_zone_known,
                   t.header_text, t.buttons::text AS buttons_json,
                   b.template_header_params::text AS template_header_params,
                   b.template_button_params::text AS template_button_params, b.media::text AS media
            FROM herald.broadcasts b
            LEFT JOIN herald.channels c ON c.id = b.channel_id
            LEFT JOIN herald.templates t ON t.id = b.template_id
            WHERE b.id = \(id) AND (\(statuses)::text[] IS NULL OR b.status = ANY(\(statuses)::text[]))
            """)
        guard let row = rows.first else { return nil }
        var channel: BroadcastDefinition.Channel?
        if let channelID = try row.decode(Int64?.self, at: 8) {
            channel = .init(id: channelID, name: try row.decode(String.self, at: 9), kind: try row.decode(String.self, at: 10),
                            provider: try row.decode(String.self, at: 11), settings: try row.decode(String.self, at: 12),
                            enabled: try row.decode(Bool.self, at: 13))
        }
        var template: BroadcastDefinition.Template?
        if let templateID = try row.decode(Int64?.self, at: 14) {
            template = .init(id: templateID, channelID: try row.decode(Int64.self, at: 15), name: try row.decode(String.self, at: 16),
                             language: try row.decode(String.self, at: 17), status: try row.decode(String.self, at: 18),
                             body: try row.decode(String.self, at: 19),
                             headerFormat: try row.decode(String.self, "header_format"),
                             buttonCount: try row.decode(Int.self, "template_buttons"),
                             headerText: try row.decode(String?.self, "header_text"),
                             buttons: try row.decode(String?.self, "buttons_json"))
        }
        return BroadcastDefinition(
            id: try row.decode(Int64.self, at: 0), name: try row.decode(String.self, at: 1),
            channelID: try row.decode(Int64.self, at: 2), subject: try row.decode(String?.self, at: 3),
            body: try row.decode(String?.self, at: 4), htmlBody: try row.decode(String?.self, at: 5),
            templateID: try row.decode(Int64?.self, at: 6), templateParams: try row.decode(String?.self, at: 7),
            channel: channel, template: template,
            groupCount: try row.decode(Int.self, at: 20), pickedCount: try row.decode(Int.self, at: 21),
            mediaCount: try row.decode(Int.self, "media_items"),
            timing: .init(sendWindow: try row.decode(String?.self, "send_window"), localSendAt: try row.decode(Bool.self, "local_send_at"),
                          timeZone: try row.decode(String?.self, "time_zone"), timeZoneKnown: try row.decode(Bool.self, "time_zone_known")),
            templateHeaderParams: try row.decode(String?.self, "template_header_params"),
            templateButtonParams: try row.decode(String?.self, "template_button_params"),
            media: try row.decode(String?.self, "media"))
    }

    /// Ends a `scheduled` broadcast as `failed` with `error`.
    ///
    /// A row written before migration 0008 may hold values its checks (NOT VALID while such rows
    /// exist) refuse on any update, which would make failing it impossible: such a
    /// `template_params` or infinite `send_at` is cleared in the same write and named in `error`.
    ///
    /// Normally nothing was expanded yet. If an interrupted expansion had already written some
    /// messages (validation runs again when it resumes, and the admin tool may have changed the
    /// channel meanwhile), the same statement deletes their jobs and ends their queued messages as
    /// `cancelled`, so nothing of a failed broadcast lingers in the queue.
    /// - Returns: false when the broadcast was no longer `scheduled` (the admin tool's change wins).
    @discardableResult
    public func fail(_ id: Int64, error: String) async throws -> Bool {
        let rows = try await connection.query("""
            WITH failed AS (
                UPDATE herald.broadcasts
                SET status = 'failed', finished_at = now(),
                    error = \(error) || CASE WHEN template_params IS NULL OR herald.is_string_array(template_params)
                                                  OR strpos(\(error), 'template_params') > 0 THEN ''
                                             ELSE ' (template_params ' || left(template_params::text, 200) || ' cleared: not an array of strings)' END
                                     || CASE WHEN send_at IS NULL OR isfinite(send_at) OR strpos(\(error), 'send_at') > 0 THEN ''
                                             ELSE ' (send_at ' || send_at::text || ' cleared)' END,
                    template_params = CASE WHEN template_params IS NULL OR herald.is_string_array(template_params)
                                           THEN template_params END,
                    send_at = CASE WHEN isfinite(send_at) THEN send_at END
                WHERE id = \(id) AND status = 'scheduled'
                RETURNING id
            ), gone AS (
                DELETE FROM herald.jobs j USING failed f
                WHERE j.broadcast_id = f.id
                RETURNING j.message_id
            ), ended AS (
                UPDATE herald.messages m SET status = 'cancelled'
                FROM gone g
                WHERE m.id = g.message_id AND m.status = 'queued'
            )
            SELECT count(*) FROM failed
            """)
        return try rows[0].decode(Int.self, at: 0) == 1
    }

    // MARK: Expansion

    /// The smallest contact id of the broadcast's audience above `cursor` (nil: from the start),
    /// or nil when there is none: the expansion is complete.
    ///
    /// Uses the primary keys: one `ORDER BY … LIMIT 1` probe of `group_members (group_id,
    /// contact_id)` per group and one of `broadcast_contacts (broadcast_id, contact_id)`. Chunks
    /// therefore start at a real audience member, so sparse contact ids cost no empty chunks.
    public func nextAudienceContact(of id: Int64, after cursor: Int64?) async throws -> Int64? {
        let after = cursor ?? Int64.min
        let rows = try await connection.query("""
            SELECT least(
                (SELECT min(m.contact_id)
                 FROM herald.broadcast_groups bg
                 CROSS JOIN LATERAL (
                     SELECT gm.contact_id FROM herald.group_members gm
                     WHERE gm.group_id = bg.group_id AND gm.contact_id > \(after)
                     ORDER BY gm.contact_id LIMIT 1) m
                 WHERE bg.broadcast_id = \(id)),
                (SELECT min(bc.contact_id) FROM herald.broadcast_contacts bc
                 WHERE bc.broadcast_id = \(id) AND bc.contact_id > \(after)))
            """)
        return try rows.first?.decode(Int64?.self, at: 0)
    }

    /// What one expansion chunk did.
    public struct ChunkResult: Sendable, Equatable {
        /// False when nothing was done: the broadcast is no longer `scheduled` (cancelled
        /// meanwhile) or its cursor moved (another expander got there first).
        public var advanced: Bool
        /// Messages inserted (queued and skipped).
        public var messages: Int
        /// Jobs inserted (one per queued message).
        public var jobs: Int
        /// Eligible contacts of the chunk whose `time_zone` PostgreSQL does not know: they got
        /// the broadcast's zone instead.
        public var unknownZoneContacts: Int
        /// One such unknown zone name, nil when there is none.
        public var unknownZoneExample: String?

        public init(advanced: Bool, messages: Int, jobs: Int, unknownZoneContacts: Int = 0, unknownZoneExample: String? = nil) {
            self.advanced = advanced
            self.messages = messages
            self.jobs = jobs
            self.unknownZoneContacts = unknownZoneContacts
            self.unknownZoneExample = unknownZoneExample
        }
    }

    /// The eligibility rules of one channel kind.
    public struct Eligibility: Sendable, Equatable {
        /// `whatsapp`, `sms` or `email`: which opt-outs apply and which address is used
        /// (`email` for email, `phone` otherwise).
        public var kind: String
        /// True for a WhatsApp broadcast without a template: contacts who have not written within
        /// 24 hours are skipped with `outside_whatsapp_window`.
        public var requiresWhatsAppWindow: Bool

        public init(kind: String, requiresWhatsAppWindow: Bool) {
            self.kind = kind
            self.requiresWhatsAppWindow = requiresWhatsAppWindow
        }
    }

    /// A usable phone: E.164, `+` and 8 to 15 digits, the first 1–9. The one address rule: the
    /// worker sends to the address expansion stored, and never checks it again.
    static let phonePattern = #"'^\+[1-9][0-9]{7,14}$'"#
    /// A usable email address (the one rule, as for phones).
    static let emailPattern = #"'^[^@\s]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$'"#

    /// Expands the audience members with contact ids in `low...high` into messages and jobs, in
    /// one statement (one short transaction: vacuum and other broadcasts are never held up for
    /// long), and advances `expansion_cursor` to `high`.
    ///
    /// - Messages are one per distinct contact (`UNION` of the groups' members and the picked
    ///   contacts); `ON CONFLICT (broadcast_id, contact_id) DO NOTHING` keeps a replayed chunk
    ///   from doubling anything, and jobs are inserted only for the messages this statement
    ///   inserted as `queued`.
    /// - Skip reasons, the first that applies winning: `opted_out` (an opt-out of the channel's
    ///   kind), then `invalid_address` (no address, or not E.164 / not an email address), then
    ///   `outside_whatsapp_window`. An opted-out contact is reported as opted out even when its
    ///   address is also broken, because that is the reason that would remain after a fix.
    /// - Everything is gated on the cursor update `WHERE status = 'scheduled' AND
    ///   expansion_cursor = previous` (null matching null): a cancelled broadcast, or a chunk that
    ///   someone else already did, inserts nothing.
    ///
    /// - Parameters:
    ///   - previousCursor: the `expansion_cursor` this chunk continues from (nil for the first).
    public func expandChunk(of id: Int64, channelID: Int64, eligibility: Eligibility,
                            previousCursor: Int64?, low: Int64, high: Int64) async throws -> ChunkResult {
        let rows = try await connection.query("""
            WITH advanced AS (
                UPDATE herald.broadcasts SET expansion_cursor = \(high)
                WHERE id = \(id) AND status = 'scheduled'
                  AND coalesce(expansion_cursor, \(Int64.min)) = \(previousCursor ?? Int64.min)
                RETURNING id, send_window, local_send_at, send_at, coalesce(time_zone, 'UTC') AS zone
            ), audience AS (
                SELECT gm.contact_id
                FROM herald.broadcast_groups bg
                JOIN herald.group_members gm ON gm.group_id = bg.group_id
                WHERE bg.broadcast_id = \(id) AND gm.contact_id BETWEEN \(low) AND \(high)
                UNION
                SELECT bc.contact_id
                FROM herald.broadcast_contacts bc
                WHERE bc.broadcast_id = \(id) AND bc.contact_id BETWEEN \(low) AND \(high)
            ), opted_out AS (
                SELECT DISTINCT o.contact_id
                FROM herald.opt_outs o
                WHERE o.channel_kind = \(eligibility.kind) AND o.contact_id BETWEEN \(low) AND \(high)
            ), candidates AS (
                SELECT c.id AS contact_id, a.address, coalesce(c.time_zone, '') AS zone_key,
                       \(unescaped: Self.skipReasonSQL(eligibility)) AS skip_reason
                FROM audience au
                JOIN herald.contacts c ON c.id = au.contact_id
                CROSS JOIN LATERAL (SELECT CASE WHEN \(eligibility.kind) = 'email' THEN c.email ELSE c.phone END AS address) a
                LEFT JOIN opted_out o ON o.contact_id = c.id
                WHERE EXISTS (SELECT 1 FROM advanced)
            ), zones AS (
                -- Delivery timing, once per distinct zone of the chunk, not per contact: the
                -- recipient's zone (the broadcast's when null or unknown), the instant it is due
                -- (local_send_at: send_at's wall clock read in that zone; never before now), then
                -- the next opening of the send window from there.
                SELECT k.zone_key, k.known, r.zone,
                       herald.next_send_opening(ad.send_window, r.zone,
                           greatest(now(), CASE WHEN ad.local_send_at AND ad.send_at IS NOT NULL
                                                THEN herald.local_due_at(ad.send_at, ad.zone, r.zone) END)) AS run_at,
                       CASE WHEN ad.send_window IS NOT NULL THEN r.zone END AS job_zone
                FROM (SELECT zone_key, zone_key = '' OR herald.time_zone_known(zone_key) AS known
                      FROM candidates WHERE skip_reason IS NULL GROUP BY zone_key) k
                CROSS JOIN advanced ad
                CROSS JOIN LATERAL (SELECT CASE WHEN k.zone_key <> '' AND k.known THEN k.zone_key ELSE ad.zone END AS zone) r
            ), inserted AS (
                INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address, status, skip_reason)
                SELECT \(id), contact_id, \(channelID), address,
                       CASE WHEN skip_reason IS NULL THEN 'queued' ELSE 'skipped' END, skip_reason
                FROM candidates
                ORDER BY contact_id
                ON CONFLICT (broadcast_id, contact_id) DO NOTHING
                RETURNING id, contact_id, status
            ), queued AS (
                INSERT INTO herald.jobs (message_id, broadcast_id, channel_id, run_at, time_zone)
                SELECT i.id, \(id), \(channelID), z.run_at, z.job_zone
                FROM inserted i
                JOIN candidates cd ON cd.contact_id = i.contact_id
                JOIN zones z ON z.zone_key = cd.zone_key
                WHERE i.status = 'queued'
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM advanced), (SELECT count(*) FROM inserted), (SELECT count(*) FROM queued),
                   (SELECT count(*) FROM candidates cd JOIN zones z ON z.zone_key = cd.zone_key
                    WHERE cd.skip_reason IS NULL AND NOT z.known),
                   (SELECT min(zone_key) FROM zones WHERE NOT known)
            """)
        let row = rows[0]
        return ChunkResult(advanced: try row.decode(Int.self, at: 0) == 1,
                           messages: try row.decode(Int.self, at: 1), jobs: try row.decode(Int.self, at: 2),
                           unknownZoneContacts: try row.decode(Int.self, at: 3), unknownZoneExample: try row.decode(String?.self, at: 4))
    }

    /// The skip-reason expression over `c` (contacts), `a.address` and `o` (opt-outs of the
    /// kind), shared by expansion and `herald preview` so both apply the same rules.
    static func skipReasonSQL(_ eligibility: Eligibility) -> String {
        let pattern = eligibility.kind == "email" ? emailPattern : phonePattern
        return """
            CASE WHEN o.contact_id IS NOT NULL THEN 'opted_out'
                 WHEN a.address IS NULL OR a.address !~ \(pattern) THEN 'invalid_address'
                 WHEN \(eligibility.requiresWhatsAppWindow ? "true" : "false")
                   AND (c.last_inbound_at IS NULL OR c.last_inbound_at < now() - interval '24 hours')
                   THEN 'outside_whatsapp_window'
            END
            """
    }

    /// Flips an expanded broadcast from `scheduled` to `sending` and wakes the workers
    /// (`NOTIFY herald_jobs`, payload: the broadcast id), in one statement.
    /// - Returns: false when it was no longer `scheduled` (cancelled meanwhile: the cancel wins,
    ///   and since workers claim only jobs of `sending` broadcasts, nothing was ever claimable).
    /// - Parameter warning: written to `error` when given (a broadcast that starts with a caveat,
    ///   e.g. contacts with an unknown time zone).
    public func start(_ id: Int64, warning: String? = nil) async throws -> Bool {
        let rows = try await connection.query("""
            WITH started AS (
                UPDATE herald.broadcasts SET status = 'sending', started_at = now(), expanded_at = now(),
                       error = coalesce(\(warning), error)
                WHERE id = \(id) AND status = 'scheduled'
                RETURNING id
            )
            SELECT pg_notify('herald_jobs', id::text) FROM started
            """)
        return rows.count == 1
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
        return try rows.map { try $0.decode(Int64.self, at: 0) }
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
            SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM ended)
            """)
        return try rows[0].decode(Int.self, at: 0)
    }

    /// The clean-up of cancelled broadcasts alone was ``endUnsent(limit:)``'s first job; kept for
    /// callers of the old name.
    public func cancelUnsent(limit: Int = 10_000) async throws -> Int {
        try await endUnsent(limit: limit)
    }

    // MARK: Leadership

    /// Tries to take the session-level advisory lock that makes this session the acting scheduler.
    /// - Returns: true when this session holds it (again).
    public func tryLeadership(key: Int64) async throws -> Bool {
        try await connection.query("SELECT pg_try_advisory_lock(\(key))")[0].decode(Bool.self, at: 0)
    }
}
