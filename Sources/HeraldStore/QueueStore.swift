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
    /// can be examined (`EXPLAIN`), which a test of its cost does. A batch of `sent` outcomes
    /// only, nearly every batch, gets ``recordSentStatement(_:owner:)``; any other, the general
    /// statement.
    public static func recordStatement(_ outcomes: [JobOutcome], owner: String) -> PostgresQuery {
        recordSentStatement(outcomes, owner: owner) ?? recordAnyStatement(outcomes, owner: owner)
    }

    /// What the general statement does for a batch of `sent` outcomes, and nothing else: delete
    /// the jobs `owner` still holds, then move their messages from `queued` to `sent`. Nil when
    /// some outcome is not `sent`.
    ///
    /// Why a statement of its own: the general one carries every outcome's ten columns through
    /// its steps, runs the steps for retries, parts, hand-backs and provider opt-outs even when
    /// they have nothing to do, decides each column with a `CASE`, and sets `error_code` (so
    /// the template-refusal trigger's condition is evaluated on every row). Alone, this one
    /// costs PostgreSQL about a fifth less a message (`scripts/bench-record-statements`;
    /// BENCHMARKS.md, "The record statement for sent outcomes"). The lease check and the join
    /// through the key are the general statement's (see there).
    public static func recordSentStatement(_ outcomes: [JobOutcome], owner: String) -> PostgresQuery? {
        var ids: [Int64] = [], providerIDs: [String] = [], segments: [Int?] = []
        ids.reserveCapacity(outcomes.count); providerIDs.reserveCapacity(outcomes.count); segments.reserveCapacity(outcomes.count)
        for o in outcomes {
            guard case .sent(let providerID) = o.result else { return nil }
            ids.append(o.messageID); providerIDs.append(providerID); segments.append(o.segments)
        }
        // MATERIALIZED: referenced once, `o` would otherwise be inlined, its owner would become
        // the constant the general statement avoids, and the planner would scan `jobs` and probe
        // the batch for each row (RecordPlanTests).
        return """
            WITH o AS MATERIALIZED (
                SELECT *, \(owner)::text AS owner FROM unnest(\(ids)::bigint[], \(providerIDs)::text[], \(segments)::int[])
                    AS o(message_id, provider_message_id, segments)
            ), finished AS (
                DELETE FROM herald.jobs j USING o
                WHERE j.message_id = o.message_id AND j.lease_owner = o.owner
                RETURNING o.message_id, o.provider_message_id, o.segments
            ), applied AS (
                UPDATE herald.messages m SET status = 'sent', attempts = m.attempts + 1,
                    provider_message_id = o.provider_message_id, segments = coalesce(o.segments, m.segments), sent_at = now()
                FROM finished o
                WHERE m.id = o.message_id AND m.status = 'queued'
                RETURNING m.id
            )
            SELECT count(*) AS recorded FROM applied
            """
    }

    /// The statement for a batch of any outcomes.
    public static func recordAnyStatement(_ outcomes: [JobOutcome], owner: String) -> PostgresQuery {
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
