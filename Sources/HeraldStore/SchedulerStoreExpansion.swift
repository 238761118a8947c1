import HeraldCore
import HeraldPostgres

/// Audience expansion: the next chunk's start, eligibility rules, and the chunk statement.
extension SchedulerStore {
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
                 WHERE bc.broadcast_id = \(id) AND bc.contact_id > \(after))) AS next_contact_id
            """)
        return try rows.first?.decode(Int64?.self, "next_contact_id")
    }

    /// What one expansion chunk did.
    public struct ChunkResult: Sendable, Equatable {
        /// False when nothing was done: the broadcast is no longer being expanded (cancelled or
        /// failed meanwhile), waits for an edit's re-validation, or its cursor moved (another
        /// expander got there first).
        public var advanced: Bool
        /// Messages inserted (queued and skipped).
        public var messages: Int
        /// Jobs inserted (one per queued message).
        public var jobs: Int
        /// Eligible contacts of the chunk whose `time_zone` PostgreSQL does not know: they got
        /// the broadcast's zone instead.
        public var unknownZoneContacts = 0
        /// One such unknown zone name, nil when there is none.
        public var unknownZoneExample: String?
    }

    /// Who of an audience may receive a broadcast: the rules of its channel's kind.
    public struct Eligibility: Sendable, Equatable {
        /// Which opt-outs apply and which address is used (`email` for email, `phone` otherwise).
        public var kind: ChannelKind
        /// True for a WhatsApp broadcast without a template: contacts who have not written within
        /// 24 hours are skipped with `outside_whatsapp_window`.
        public var requiresWhatsAppWindow: Bool

        public init(kind: ChannelKind, requiresWhatsAppWindow: Bool) {
            self.kind = kind
            self.requiresWhatsAppWindow = requiresWhatsAppWindow
        }

        /// The rules of a broadcast on a channel of `kind`, with or without a template: only a
        /// WhatsApp template may start a conversation, so free-form WhatsApp needs the window.
        /// Expansion and `herald preview` both take their rules from here.
        public init(kind: ChannelKind, hasTemplate: Bool) {
            self.init(kind: kind, requiresWhatsAppWindow: kind == .whatsapp && !hasTemplate)
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
    /// - Everything is gated on the cursor update, which matches only a broadcast still being
    ///   expanded (`expanded_at` null; `scheduled`, or `sending`/`paused` past its first chunk),
    ///   with no edit waiting for re-validation (`definition_changed_at` null), whose cursor is
    ///   `previous` (null matching null): a cancelled or failed broadcast, an edited one, or a
    ///   chunk that someone else already did, inserts nothing. The row lock of that update orders
    ///   the chunk against the admin tool's concurrent cancel or edit: one of them goes first, and
    ///   the other sees its result.
    /// - *Streaming* (`startsSending`). The same update flips a `scheduled` broadcast to `sending`
    ///   (and stamps `started_at`), and the statement wakes the workers (`NOTIFY herald_jobs`)
    ///   whenever it queued jobs of a `sending` broadcast: the first chunk's jobs are claimable as
    ///   soon as it commits, while later chunks are still to come. `expanded_at` stays null until
    ///   ``finishExpansion(_:warning:)`` records the end of the expansion, and
    ///   ``completeFinished()`` never completes a broadcast before that. A `paused` broadcast goes
    ///   on expanding (its jobs wait for the resume).
    ///
    /// - Parameters:
    ///   - previousCursor: the `expansion_cursor` this chunk continues from (nil for the first).
    ///   - startsSending: false keeps the broadcast `scheduled` (nothing claimable) until
    ///     ``finishExpansion(_:warning:)``: the behaviour before streaming.
    public func expandChunk(of id: Int64, channelID: Int64, eligibility: Eligibility,
                            previousCursor: Int64?, low: Int64, high: Int64, startsSending: Bool = true) async throws -> ChunkResult {
        let rows = try await connection.query(.joined([Self.audienceCTEs(of: id, eligibility: eligibility, low: low, high: high), """
            , advanced AS (
                UPDATE herald.broadcasts
                SET expansion_cursor = \(high),
                    status = CASE WHEN status = 'scheduled' AND \(startsSending) THEN 'sending' ELSE status END,
                    started_at = CASE WHEN \(startsSending) THEN coalesce(started_at, now()) ELSE started_at END
                WHERE id = \(id) AND expanded_at IS NULL AND definition_changed_at IS NULL
                  AND (status = 'scheduled' OR (status IN ('sending', 'paused') AND expansion_cursor IS NOT NULL))
                  AND coalesce(expansion_cursor, \(Int64.min)) = \(previousCursor ?? Int64.min)
                RETURNING id, status, send_window, local_send_at, send_at, coalesce(time_zone, 'UTC') AS zone
            ), candidates AS (
                SELECT c.id AS contact_id, a.address, coalesce(c.time_zone, '') AS zone_key,
                       \(unescaped: Self.skipReasonSQL(eligibility)) AS skip_reason
                FROM audience au
                \(unescaped: Self.audienceJoinsSQL(eligibility))
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
                -- Each inserted message's zone is read from its contact by primary key (the same
                -- snapshot as `candidates`), not by joining `candidates` back: the planner cannot
                -- estimate either CTE, and with a new broadcast's statistics it chose a nested
                -- loop of the two, quadratic in the chunk (157 s for a chunk of 20,000).
                INSERT INTO herald.jobs (message_id, broadcast_id, channel_id, run_at, time_zone)
                SELECT i.id, \(id), \(channelID), z.run_at, z.job_zone
                FROM inserted i
                JOIN herald.contacts c ON c.id = i.contact_id
                JOIN zones z ON z.zone_key = coalesce(c.time_zone, '')
                WHERE i.status = 'queued'
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM advanced) AS advanced, (SELECT count(*) FROM inserted) AS messages,
                   (SELECT count(*) FROM queued) AS jobs,
                   (SELECT count(*) FROM candidates cd JOIN zones z ON z.zone_key = cd.zone_key
                    WHERE cd.skip_reason IS NULL AND NOT z.known) AS unknown_zone_contacts,
                   (SELECT min(zone_key) FROM zones WHERE NOT known) AS unknown_zone_example,
                   -- Workers wake for the jobs of this chunk (they claim only `sending` broadcasts).
                   (SELECT count(pg_notify('herald_jobs', ad.id::text)) FROM advanced ad
                    WHERE ad.status = 'sending' AND EXISTS (SELECT 1 FROM queued)) AS notified
            """]))
        let row = rows[0]
        return ChunkResult(advanced: try row.decode(Int.self, "advanced") == 1,
                           messages: try row.decode(Int.self, "messages"), jobs: try row.decode(Int.self, "jobs"),
                           unknownZoneContacts: try row.decode(Int.self, "unknown_zone_contacts"),
                           unknownZoneExample: try row.decode(String?.self, "unknown_zone_example"))
    }

    /// The skip-reason expression over `c` (contacts), `a.address` and `o` (opt-outs of the
    /// kind), shared by expansion and `herald preview` so both apply the same rules.
    static func skipReasonSQL(_ eligibility: Eligibility) -> String {
        let pattern = eligibility.kind == .email ? emailPattern : phonePattern
        return """
            CASE WHEN o.contact_id IS NOT NULL THEN 'opted_out'
                 WHEN a.address IS NULL OR a.address !~ \(pattern) THEN 'invalid_address'
                 WHEN \(eligibility.requiresWhatsAppWindow ? "true" : "false")
                   AND (c.last_inbound_at IS NULL OR c.last_inbound_at < now() - interval '24 hours')
                   THEN 'outside_whatsapp_window'
            END
            """
    }

}
