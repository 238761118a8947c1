import Foundation
import HeraldCore
import HeraldPostgres

/// Every SQL statement of the worker's queue: read active broadcasts, claim, record, hand back.
///
/// All writes are guarded so the admin tool's changes and other workers' leases win: outcomes
/// apply only to jobs this worker still holds (`lease_owner`) whose messages are still `queued`.
public struct QueueStore: Sendable {
    public init() {}

    /// A `sending` broadcast whose row cannot be read (e.g. `template_params = '[null]'`):
    /// quarantined, so one bad row never stops the others.
    public struct UnreadableBroadcast: Sendable, Equatable {
        public var id: Int64
        /// What is wrong with the row, naming the column.
        public var reason: String
    }

    /// Broadcasts in `sending` on enabled channels, optionally only on the named channels, and
    /// those among them whose row cannot be read.
    ///
    /// Values that could make the whole query fail (JSON arrays, numbers out of range) are read
    /// as text and checked row by row here, so one bad row is reported, never contagious.
    public func activeBroadcasts(on connection: PostgresConnection, channels: [String]?) async throws
        -> (broadcasts: [ActiveBroadcast], unreadable: [UnreadableBroadcast]) {
        let rows = try await connection.query("""
            SELECT b.id, b.channel_id, c.name AS channel_name, c.kind, c.provider, c.settings::text AS settings,
                   c.rate_per_second::text AS rate_per_second, c.burst::text AS burst,
                   b.subject, b.body, b.html_body, t.name AS template_name, t.language AS template_language,
                   b.template_params::text AS template_params,
                   t.header_format, t.header_text, t.buttons::text AS template_buttons,
                   b.template_header_params::text AS template_header_params,
                   b.template_button_params::text AS template_button_params, b.media::text AS media,
                   b.send_window IS NOT NULL AS has_send_window
            FROM herald.broadcasts b
            JOIN herald.channels c ON c.id = b.channel_id
            LEFT JOIN herald.templates t ON t.id = b.template_id
            WHERE b.status = 'sending' AND c.enabled AND b.definition_changed_at IS NULL -- an edit waits for the scheduler's re-validation
              AND (\(channels)::text[] IS NULL OR c.name = ANY(\(channels)::text[]))
            ORDER BY b.id
            """)
        var broadcasts: [ActiveBroadcast] = [], unreadable: [UnreadableBroadcast] = []
        for r in rows {
            let id = try r.decode(Int64.self, "id")
            do {
                let rateText = try r.decode(String.self, "rate_per_second")
                guard let rate = Double(rateText), rate.isFinite, rate > 0 else {
                    throw RowProblem("channels.rate_per_second \(rateText) is not a positive finite number")
                }
                let burstText = try r.decode(String.self, "burst")
                guard let burst = Int(burstText), burst > 0 else {
                    throw RowProblem("channels.burst \(burstText) is not a positive integer")
                }
                broadcasts.append(ActiveBroadcast(
                    id: id, channelID: try r.decode(Int64.self, "channel_id"),
                    channelName: try r.decode(String.self, "channel_name"), kind: try r.decode(String.self, "kind"),
                    provider: try r.decode(String.self, "provider"), settingsJSON: try r.decode(String.self, "settings"),
                    ratePerSecond: rate, burst: burst,
                    subject: try r.decode(String?.self, "subject"), body: try r.decode(String?.self, "body"),
                    htmlBody: try r.decode(String?.self, "html_body"), templateName: try r.decode(String?.self, "template_name"),
                    templateLanguage: try r.decode(String?.self, "template_language"),
                    templateParams: try Self.templateParams(try r.decode(String?.self, "template_params")),
                    templateHeaderFormat: try r.decode(String?.self, "header_format"),
                    templateHeaderText: try r.decode(String?.self, "header_text"),
                    templateButtons: try r.decode(String?.self, "template_buttons"),
                    templateHeaderParams: try r.decode(String?.self, "template_header_params"),
                    templateButtonParams: try r.decode(String?.self, "template_button_params"),
                    media: try r.decode(String?.self, "media"),
                    hasSendWindow: try r.decode(Bool.self, "has_send_window")))
            } catch let problem as RowProblem {
                unreadable.append(UnreadableBroadcast(id: id, reason: problem.description))
            } catch {
                unreadable.append(UnreadableBroadcast(id: id, reason: "cannot read the broadcast's row: \(error)"))
            }
        }
        return (broadcasts, unreadable)
    }

    struct RowProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// `template_params` (a JSON array or NULL) as strings; any element that is not a string is
    /// an error naming its index.
    static func templateParams(_ json: String?) throws -> [String] {
        guard let json else { return [] }
        guard let array = try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]) as? [Any] else {
            throw RowProblem("broadcasts.template_params is not a JSON array")
        }
        return try array.enumerated().map { index, element in
            guard let text = element as? String else {
                throw RowProblem("broadcasts.template_params[\(index)] is \(element is NSNull ? "null" : "not a string"); every parameter must be a string")
            }
            return text
        }
    }

    /// Ends a broadcast the workers cannot send as `failed` with `error`, unless the admin
    /// tool or another process moved it on meanwhile (only from `sending` or `paused`).
    /// - Returns: whether this call failed it.
    @discardableResult
    public func failBroadcast(id: Int64, error: String, on connection: PostgresConnection) async throws -> Bool {
        try await connection.execute("""
            UPDATE herald.broadcasts SET status = 'failed', error = \(error), finished_at = now()
            WHERE id = \(id) AND status IN ('sending', 'paused')
            """) > 0
    }

    /// What one claim brought back.
    public struct Claim: Sendable {
        /// The claimed jobs (empty when nothing was due or the channel had no tokens).
        public var jobs: [ClaimedJob]
        /// Tokens the channel's bucket granted (≥ jobs.count; the rest went back).
        public var granted: Int
        /// When the channel's bucket is worth asking again, when `granted` was 0.
        public var retryAfter: Duration
    }

    /// Claims up to `limit` due jobs of one broadcast for `lease`, skipping rows other workers
    /// hold, and takes one token of the channel's rate limit per job, all in one statement.
    ///
    /// The statement takes tokens (`herald.take_tokens`), picks at most that many jobs with
    /// `FOR UPDATE SKIP LOCKED` on the `jobs_claim` index, moves their `run_at` to the lease's
    /// expiry (which makes the lease), returns unused tokens, and joins the contact, its
    /// re-checked opt-out and only the custom fields the templates use. It commits at once: no
    /// transaction stays open while the messages are sent.
    ///
    /// Only a broadcast still `sending` yields jobs, so a pause or cancel stops new claims at
    /// once, whatever a worker's cached list says.
    ///
    /// **Restart grace.** A job whose lease has lapsed while an owner still holds it (its
    /// worker died, or could not reach the database) is claimable only once PostgreSQL has been
    /// up for `restartGrace`: `now() > pg_postmaster_start_time() + restartGrace`. A worker that
    /// sent messages while the database was down keeps their outcomes and writes them, guarded
    /// by `lease_owner` alone, as soon as the database is back; without the grace, another
    /// worker could claim those jobs in the first second after a restart whose outage outlasted
    /// the lease and send them again. River and Oban have no such rule: River's rescuer and
    /// Oban's lifeline re-run jobs whose attempt outlived a timeout (at-least-once), and neither
    /// writes completions guarded by owner after the lease. The grace costs only a delay in
    /// rescuing the jobs of a worker that died across a restart; it does not cover an outage
    /// without a restart (a network partition), where the lease still bounds the wait.
    /// - Parameters:
    ///   - limit: tokens asked for (at most this many jobs).
    ///   - scanLimit: how many due jobs the statement locks and looks at, at least `limit`.
    ///     Part of the statement's text (one prepared plan per value, so callers keep to a few
    ///     values). More than `limit` only pays for a broadcast with a send window, whose due
    ///     jobs may turn out closed and be moved to their next opening; every row scanned is
    ///     locked, so a scan far above what the bucket grants costs the database for nothing.
    public func claim(on connection: PostgresConnection, broadcastID: Int64, channelID: Int64, kind: ChannelKind, limit: Int,
                      scanLimit: Int? = nil, lease: Duration, restartGrace: Duration = .seconds(60), owner: String,
                      attributeKeys: [String]) async throws -> Claim {
        let leaseSeconds = lease.inSeconds
        let graceSeconds = restartGrace.inSeconds
        let scan = max(limit, scanLimit ?? limit)
        // Prepared: parsed and planned once per connection. The batch size is part of the text,
        // so the plan is made for it (see `due`).
        let rows = try await connection.preparedQuery("""
            WITH t AS MATERIALIZED (
                SELECT granted, wait_seconds FROM herald.take_tokens(\(channelID), \(limit))
            ), due AS (
                -- A constant LIMIT, so the planner knows the batch is small and walks jobs_claim
                -- with nested loops; a LIMIT taken from `t` would be planned as "10% of the
                -- table" (hash joins over every job and contact, ~40× slower at 200,000 jobs).
                -- `opens`: when the recipient's send window is open next (now when it is open, or
                -- when the broadcast has no window: jobs of such broadcasts carry no time_zone).
                SELECT message_id,
                       CASE WHEN time_zone IS NULL THEN now()
                            ELSE herald.job_send_opening(broadcast_id, time_zone, now()) END AS opens
                FROM herald.jobs
                WHERE broadcast_id = \(broadcastID) AND run_at <= now()
                  AND (lease_owner IS NULL OR now() > pg_postmaster_start_time() + make_interval(secs => \(graceSeconds)))
                  AND EXISTS (SELECT 1 FROM herald.broadcasts b WHERE b.id = \(broadcastID) AND b.status = 'sending')
                ORDER BY run_at
                LIMIT \(unescaped: String(scan))
                FOR UPDATE SKIP LOCKED
            ), held AS (
                -- A window that closed since expansion (or a pause over its end): the job waits,
                -- queued, for the next opening, and no claim looks at it before then.
                -- (By jobs_pkey, as `claimed` below: a join here was planned as a hash of all jobs.)
                UPDATE herald.jobs j SET run_at = (SELECT due.opens FROM due WHERE due.message_id = j.message_id)
                WHERE j.message_id = ANY (ARRAY(SELECT message_id FROM due WHERE due.opens > now()))
            ), picked AS (
                SELECT message_id FROM due WHERE due.opens <= now() LIMIT (SELECT granted FROM t)
            ), tiered AS MATERIALIZED ( -- consent (issue 19): the messaging tier (daily_limit) admits some, puts the rest off
                SELECT herald.tier_admit(\(channelID), ARRAY(SELECT message_id FROM picked)) AS message_id
            ), claimed AS (
                UPDATE herald.jobs j
                SET run_at = now() + make_interval(secs => \(leaseSeconds)), lease_owner = \(owner), claims = j.claims + 1
                -- `= ANY (ARRAY(…))`: a probe of jobs_pkey per claimed job. As a join, the planner
                -- took tier_admit's set for 1,000 rows and hashed all of jobs (26 ms a claim at
                -- 80,000 jobs, growing with the table: the bound on many-channel throughput).
                WHERE j.message_id = ANY (ARRAY(SELECT message_id FROM tiered))
                RETURNING j.message_id
            ), refund AS MATERIALIZED (
                SELECT herald.return_tokens(\(channelID), (SELECT granted FROM t) - (SELECT count(*) FROM claimed)::int) AS returned
            )
            SELECT t.granted, t.wait_seconds, (SELECT returned FROM refund) AS returned,
                   m.id AS message_id, m.address, m.attempts, m.contact_id, c.first_name, c.last_name, c.phone, c.email,
                   ARRAY(SELECT c.attributes ->> k FROM unnest(\(attributeKeys)::text[]) AS k) AS attrs,
                   coalesce(c.last_inbound_at > now() - interval '24 hours', false) AS inside_service_window,
                   EXISTS (SELECT 1 FROM herald.opt_outs o WHERE o.contact_id = m.contact_id AND o.channel_kind = \(kind.rawValue)) AS opted_out,
                   coalesce(m.part_provider_message_ids, '{}') AS sent_parts,
                   c.id IS NULL AS contact_deleted
            FROM t
            LEFT JOIN (claimed JOIN herald.messages m ON m.id = claimed.message_id
                       LEFT JOIN herald.contacts c ON c.id = m.contact_id) ON true
            """)
        var claim = Claim(jobs: [], granted: 0, retryAfter: .zero)
        claim.jobs.reserveCapacity(rows.count)
        for r in rows {
            claim.granted = try r.decode(Int.self, "granted")
            // Bounded: a rate near zero asks for a wait of ~1e20 s, which must not trap.
            let wait = try r.decode(Double.self, "wait_seconds")
            let bounded = wait.isFinite ? min(max(wait, 0), 3600) : 3600
            claim.retryAfter = .milliseconds(Int64((bounded * 1000).rounded(.up)))
            guard let messageID = try r.decode(Int64?.self, "message_id") else { continue }
            let values = try r.decode([String?].self, "attrs")
            var attributes: [String: String] = [:]
            for (key, value) in zip(attributeKeys, values) { if let value { attributes[key] = value } }
            let contact = Contact(id: try r.decode(Int64.self, "contact_id"), firstName: try r.decode(String?.self, "first_name"),
                                  lastName: try r.decode(String?.self, "last_name"), phone: try r.decode(String?.self, "phone"),
                                  email: try r.decode(String?.self, "email"), attributes: attributes)
            claim.jobs.append(ClaimedJob(messageID: messageID, address: try r.decode(String?.self, "address"),
                                         attempts: try r.decode(Int.self, "attempts"), contact: contact,
                                         optedOut: try r.decode(Bool.self, "opted_out"), insideServiceWindow: try r.decode(Bool.self, "inside_service_window"),
                                         sentParts: try r.decode([String?].self, "sent_parts").compactMap { $0 },
                                         contactDeleted: try r.decode(Bool.self, "contact_deleted")))
        }
        return claim
    }

    /// Pauses a channel for every worker for `duration` (the provider asked us to slow down).
    public func throttle(channelID: Int64, for duration: Duration, on connection: PostgresConnection) async throws {
        try await connection.execute("SELECT herald.throttle_channel(\(channelID), \(duration.inSeconds))")
    }

    /// How ``record(_:owner:on:)``'s statement spells each kind of outcome; the kinds that end a
    /// message are its `messages.status` as well.
    private enum RecordedOutcome: String {
        case sent, failed, skipped, cancelled, retry
        case partSent = "part_sent"
        case handBack = "hand_back"
    }

    /// Records many outcomes in one statement (one round trip), for jobs `owner` still holds.
    ///
    /// Finished jobs leave the queue (DELETE); retries go back with `run_at` = the retry time and
    /// no owner; a part of a multi-request message goes back due at once with its provider id
    /// recorded on the message (``JobOutcome/Result/partSent(providerMessageID:)``); hand-backs
    /// go back due now, their messages untouched. Messages move from `queued`
    /// only, so a status the admin tool or a receipt already set is never overwritten.
    /// - Returns: how many outcomes were applied (the rest had lost their lease).
    @discardableResult
    public func record(_ outcomes: [JobOutcome], owner: String, on connection: PostgresConnection) async throws -> Int {
        guard !outcomes.isEmpty else { return 0 }
        let rows = try await connection.preparedQuery(Self.recordStatement(outcomes, owner: owner))
        return try rows[0].decode(Int.self, "recorded")
    }

    /// The statement ``record(_:owner:on:)`` runs, with its parameters: public so that its plan
    /// can be examined (`EXPLAIN`), which a test of its cost does.
    public static func recordStatement(_ outcomes: [JobOutcome], owner: String) -> PostgresQuery {
        var ids: [Int64] = [], kinds: [RecordedOutcome] = [], providerIDs: [String?] = [], codes: [String?] = []
        var errors: [String?] = [], failureKinds: [FailureKind?] = [], retryAt: [Date?] = [], skipReasons: [SkipReason?] = []
        var segments: [Int?] = [], attempts: [Int] = []
        for o in outcomes {
            var providerID: String?, code: String?, error: String?, failureKind: FailureKind?, at: Date?, skip: SkipReason?
            let kind: RecordedOutcome
            switch o.result {
            case .sent(let pid): kind = .sent; providerID = pid
            case .partSent(let pid): kind = .partSent; providerID = pid
            case .retry(let retryAt, let c, let e, let fk): kind = .retry; code = c; error = e; failureKind = fk; at = retryAt
            case .failed(let c, let e, let fk): kind = .failed; code = c; error = e; failureKind = fk
            case .skipped(let reason): kind = .skipped; skip = reason
            case .cancelled: kind = .cancelled
            case .handBack: kind = .handBack
            }
            ids.append(o.messageID); kinds.append(kind); providerIDs.append(providerID); codes.append(code)
            errors.append(error); failureKinds.append(failureKind); retryAt.append(at); skipReasons.append(skip)
            segments.append(o.segments); attempts.append(o.isAttempt ? 1 : 0)
        }
        // Prepared (parsed and planned once per connection). Every join must be driven by the
        // outcomes through a primary key, whatever the planner believes: a plan that scans
        // `jobs` and probes the outcomes per row is quadratic in the batch. So the lease check
        // compares two columns (`j.lease_owner = o.owner`), a join condition the planner cannot
        // mistake for a filter that leaves one row of `jobs` (with `j.lease_owner = $owner` it
        // did, and probed 1,565 outcomes for each of 3,270 jobs: BENCHMARKS.md); the job
        // statements hand their outcomes on (`RETURNING o.*`), and each later step reads only those.
        return """
            WITH o AS (
                SELECT *, \(owner)::text AS owner FROM unnest(\(ids)::bigint[], \(kinds.map(\.rawValue))::text[], \(providerIDs)::text[], \(codes)::text[],
                                     \(errors)::text[], \(failureKinds.map { $0?.rawValue })::text[], \(retryAt)::timestamptz[],
                                     \(skipReasons.map { $0?.rawValue })::text[], \(segments)::int[], \(attempts)::int[])
                    AS o(message_id, outcome, provider_message_id, error_code, error, failure_kind, retry_at,
                         skip_reason, segments, attempt)
            ), finished AS (
                -- The lease check is part of the DELETE and the UPDATE themselves: a job another
                -- worker re-claimed meanwhile fails it when PostgreSQL re-checks the row after
                -- waiting for its lock, so no separate FOR UPDATE pass is needed (that pass cost
                -- one more tuple lock and WAL record per job).
                DELETE FROM herald.jobs j USING o
                WHERE j.message_id = o.message_id AND o.outcome NOT IN ('retry', 'hand_back', 'part_sent') AND j.lease_owner = o.owner
                RETURNING o.*
            ), retried AS (
                -- A part sent (migration 0017): the next part is due at once, ahead of the broadcast's
                -- due jobs (just before the oldest, by jobs_claim), so it follows within a claim or
                -- two instead of waiting behind the whole queue.
                UPDATE herald.jobs j SET lease_owner = NULL,
                    run_at = CASE WHEN o.outcome = 'retry' THEN o.retry_at
                                  ELSE least(now(), (SELECT min(q.run_at) FROM herald.jobs q WHERE q.broadcast_id = j.broadcast_id))
                                       - interval '1 millisecond' END
                FROM o
                WHERE j.message_id = o.message_id AND o.outcome IN ('retry', 'part_sent') AND j.lease_owner = o.owner
                RETURNING o.*
            ), handed_back AS (
                -- Never attempted: due again now, the message untouched.
                UPDATE herald.jobs j SET run_at = now(), lease_owner = NULL
                FROM o
                WHERE j.message_id = o.message_id AND o.outcome = 'hand_back' AND j.lease_owner = o.owner
                RETURNING j.message_id
            ), held AS (
                -- The outcomes whose job this worker still held: only those move their message.
                SELECT * FROM finished UNION ALL SELECT * FROM retried
            ), applied AS (
                UPDATE herald.messages m SET
                    status = CASE WHEN o.outcome IN ('retry', 'part_sent') THEN m.status ELSE o.outcome END,
                    attempts = m.attempts + o.attempt,
                    provider_message_id = CASE WHEN o.outcome = 'part_sent' THEN m.provider_message_id
                                               ELSE coalesce(o.provider_message_id, m.provider_message_id) END,
                    part_provider_message_ids = CASE WHEN o.outcome = 'part_sent'
                        THEN coalesce(m.part_provider_message_ids, '{}') || o.provider_message_id
                        ELSE m.part_provider_message_ids END,
                    error_code = CASE WHEN o.outcome IN ('retry', 'failed') THEN o.error_code ELSE m.error_code END,
                    error = CASE WHEN o.outcome IN ('retry', 'failed') THEN o.error ELSE m.error END,
                    failure_kind = CASE WHEN o.outcome IN ('retry', 'failed') THEN o.failure_kind ELSE m.failure_kind END,
                    skip_reason = coalesce(o.skip_reason, m.skip_reason),
                    segments = coalesce(o.segments, m.segments),
                    sent_at = CASE WHEN o.outcome = 'sent' THEN now() ELSE m.sent_at END,
                    failed_at = CASE WHEN o.outcome = 'failed' THEN now() ELSE m.failed_at END
                FROM held o
                WHERE m.id = o.message_id AND m.status = 'queued'
                RETURNING m.id, o.outcome, o.error_code
            ), provider_opt_outs AS MATERIALIZED ( -- consent (issue 19): Twilio 21610 / Meta 131050 opt the contact out in this statement
                SELECT herald.record_provider_opt_outs(array_agg(a.id), array_agg(a.error_code)) AS inserted
                FROM applied a WHERE a.outcome = 'failed'
            )
            SELECT (SELECT count(*) FROM applied) + (SELECT count(*) FROM handed_back) AS recorded,
                   (SELECT inserted FROM provider_opt_outs) AS provider_opt_outs -- consent (issue 19)
            """
    }

    /// Hands back every job `owner` still holds (graceful shutdown): they become claimable now.
    @discardableResult
    public func release(owner: String, on connection: PostgresConnection) async throws -> Int {
        try await connection.execute("UPDATE herald.jobs SET run_at = now(), lease_owner = NULL WHERE lease_owner = \(owner)")
    }
}
