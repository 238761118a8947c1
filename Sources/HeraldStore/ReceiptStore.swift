import Foundation
import HeraldCore
import HeraldPostgres

/// A receipt as received from a provider, ready to store (already authenticated and parsed).
public struct NewReceipt: Sendable, Equatable {
    /// `whatsapp_cloud` or `twilio`.
    public var provider: String
    /// The provider's message id (`wamid…`, `SM…`).
    public var providerMessageID: String
    /// The provider's status word, as received (`delivered`, `undelivered`, `deleted`…).
    public var status: String
    /// What it means for the message: `sent`, `delivered`, `read`, `failed`, or nil for nothing.
    public var effect: String?
    public var errorCode: String?
    public var error: String?
    /// When it happened at the provider, when the provider says.
    public var occurredAt: Date?
    /// The receipt's own JSON (a WhatsApp status object, Twilio's parameters), as `jsonb` text.
    public var payload: String
    /// Herald's message id echoed by the provider (WhatsApp's `biz_opaque_callback_data`).
    public var callbackMessageID: Int64?
    /// The channel that authenticated it (the first of ``channelIDs``).
    public var channelID: Int64?
    /// Every channel that shares the secret that authenticated it (the same Meta app and phone
    /// number, the same Twilio account): the receipt may apply only to their messages. Empty:
    /// ``channelID`` alone. A receipt with neither matches no message.
    public var channelIDs: [Int64]

    public init(provider: String, providerMessageID: String, status: String, effect: String?, errorCode: String? = nil,
                error: String? = nil, occurredAt: Date? = nil, payload: String = "{}", callbackMessageID: Int64? = nil,
                channelID: Int64? = nil, channelIDs: [Int64] = []) {
        self.provider = provider
        self.providerMessageID = providerMessageID
        self.status = status
        self.effect = effect
        self.errorCode = errorCode
        self.error = error
        self.occurredAt = occurredAt
        self.payload = payload
        self.callbackMessageID = callbackMessageID
        self.channelID = channelID ?? channelIDs.first
        self.channelIDs = channelIDs
    }
}

/// What one pass of ``ReceiptStore/apply(ids:on:)`` or ``ReceiptStore/applyPending(after:olderThan:window:limit:on:)`` did.
public struct ReceiptApplication: Sendable, Equatable {
    /// Unapplied receipts looked at.
    public var examined = 0
    /// Receipts matched to their message and processed (now `applied_at` is set).
    public var applied = 0
    /// Messages whose row changed (status, timestamps, provider id).
    public var messagesChanged = 0
    /// The highest receipt id examined (the retry pass's cursor).
    public var lastID: Int64?
    /// Receipts left for a later pass: message unknown yet, or held by a worker right now.
    public var pending: Int { examined - applied }
}

/// Every SQL statement of delivery receipts: store them raw, apply them to messages in batches,
/// record inbound WhatsApp messages.
///
/// ## How a receipt is applied
/// One statement applies a whole batch of receipts (``apply(ids:on:)``):
/// 1. it locks the batch's unapplied receipts (`SKIP LOCKED`: two appliers never share one);
/// 2. matches each to its message by Herald's own message id, which the provider echoes
///    (`callback_message_id`: WhatsApp's `biz_opaque_callback_data`, the `herald_message_id` of
///    Twilio's `StatusCallback` URL), so even a receipt whose send's answer was lost finds its
///    message; one of the channels that share the secret that verified the receipt
///    (`channel_ids`), whose recorded provider id, if any, is the receipt's (or the message had
///    several tries). A receipt without Herald's id, or without a channel, matches nothing;
/// 3. leaves alone, for a later pass, every receipt whose message a worker holds right now:
///    one whose job is under a live lease or locked by another statement. The worker records its
///    outcome guarded by `status = 'queued'`; moving the message first would make the worker's
///    `sent` (and its `provider_message_id`) miss. Once the worker has recorded, the receipt
///    applies on top. A queued message whose job nobody holds (its send timed out and waits for a
///    retry) takes the receipt at once: the provider evidently has the message, so the job is
///    deleted and no duplicate is sent;
/// 4. folds the receipts of each message into one change, forward only (the contract):
///    `queued` → `sent` → `delivered` → `read`; `failed` ends a message that is not `read`;
///    `read`, `failed`, `skipped`, `cancelled` never change. Within one batch the order of
///    arrival does not matter: `read` wins over `failed` (a read message was delivered), then
///    `failed`, then the furthest step. Replays change nothing, not even a timestamp;
/// 5. sets `sent_at`/`delivered_at`/`read_at`/`failed_at` (the provider's time of each event) when
///    still empty, `error_code`/`error` when it fails, `provider_message_id` when it was missing;
/// 6. marks the receipts applied (`message_id`, `applied_at`).
///
/// A message sent as several requests (a WhatsApp audio, then its body as text) follows its
/// last part's receipts; a receipt for an earlier part (its id in `part_provider_message_ids`)
/// is matched and marked applied like any other, so it is never left as unmatched noise, but
/// only a `failed` one changes the message: the recipient did not get all of it.
///
/// Lock order is jobs, then messages (by id), like the worker's and the scheduler's statements,
/// and jobs are only ever locked with `SKIP LOCKED` here, so appliers never deadlock with them.
/// The statement-level triggers of migration 0005 keep `broadcast_counts` right.
public struct ReceiptStore: Sendable {
    public init() {}

    /// Inserts receipts in one statement; a replay of a receipt already stored (same provider,
    /// provider message id, status, time, error code and verifying channel) is skipped
    /// (migration 0009).
    /// - Returns: the ids of the receipts stored now, to hand to ``apply(ids:on:)``.
    public func insert(_ receipts: [NewReceipt], on connection: PostgresConnection) async throws -> [Int64] {
        guard !receipts.isEmpty else { return [] }
        let providers = receipts.map(\.provider), ids = receipts.map(\.providerMessageID), statuses = receipts.map(\.status)
        let effects = receipts.map(\.effect), codes = receipts.map(\.errorCode), errors = receipts.map(\.error)
        let occurred = receipts.map(\.occurredAt), payloads = receipts.map(\.payload)
        let callbacks = receipts.map(\.callbackMessageID), channels = receipts.map(\.channelID)
        // Arrays of arrays do not pass through unnest: each scope travels as text ("{1,2}").
        let scopes: [String?] = receipts.map { $0.channelIDs.isEmpty ? nil : "{" + $0.channelIDs.map(String.init).joined(separator: ",") + "}" }
        let rows = try await connection.query("""
            INSERT INTO herald.delivery_receipts (provider, provider_message_id, status, effect, error_code, error,
                                                  occurred_at, payload, callback_message_id, channel_id, channel_ids)
            SELECT provider, provider_message_id, status, effect, error_code, error, occurred_at, payload::jsonb,
                   callback_message_id, channel_id, channel_ids::bigint[]
            FROM unnest(\(providers)::text[], \(ids)::text[], \(statuses)::text[], \(effects)::text[], \(codes)::text[],
                        \(errors)::text[], \(occurred)::timestamptz[], \(payloads)::text[], \(callbacks)::bigint[],
                        \(channels)::bigint[], \(scopes)::text[])
                AS r(provider, provider_message_id, status, effect, error_code, error, occurred_at, payload,
                     callback_message_id, channel_id, channel_ids)
            ON CONFLICT (provider, provider_message_id, status, (coalesce(occurred_at, '-infinity'::timestamptz)),
                         (coalesce(error_code, '')), (coalesce(channel_id, 0))) DO NOTHING
            RETURNING id
            """)
        return try rows.map { try $0.decode(Int64.self, "id") }
    }

    /// Applies the given receipts (those still unapplied) in one statement; see the type's notes.
    public func apply(ids: [Int64], on connection: PostgresConnection) async throws -> ReceiptApplication {
        guard !ids.isEmpty else { return ReceiptApplication() }
        return try await run(ids: ids, after: 0, window: .zero, olderThan: .zero, limit: ids.count, on: connection)
    }

    /// Applies unapplied receipts received between `window` ago and `olderThan` ago with ids above
    /// `after`, lowest id first, at most `limit`: the retry pass for receipts that arrived before
    /// their message's send was recorded. Receipts older than `window` stay unmatched
    /// (`message_id` NULL): they belong to messages Herald never sent (other tools sharing the
    /// number) or lost long ago.
    public func applyPending(after: Int64 = 0, olderThan: Duration = .zero, window: Duration = .seconds(3600),
                             limit: Int = 5000, on connection: PostgresConnection) async throws -> ReceiptApplication {
        try await run(ids: nil, after: after, window: window, olderThan: olderThan, limit: limit, on: connection)
    }

    /// One statement for both passes. `ids` nil selects by age instead; libpq's unnamed statements
    /// are planned with their parameter values, so the branch not taken folds away and each pass
    /// gets its own index (primary key, or `delivery_receipts_unapplied`).
    private func run(ids: [Int64]?, after: Int64, window: Duration, olderThan: Duration, limit: Int,
                     on connection: PostgresConnection) async throws -> ReceiptApplication {
        let windowSeconds = window.inSeconds, olderSeconds = olderThan.inSeconds
        let query: PostgresQuery = """
            WITH pending AS MATERIALIZED (
                SELECT r.id, r.provider_message_id, r.callback_message_id,
                       coalesce(r.channel_ids, ARRAY[r.channel_id]) AS channel_ids, r.effect, r.error_code, r.error,
                       coalesce(r.occurred_at, r.received_at) AS at
                FROM herald.delivery_receipts r
                WHERE r.applied_at IS NULL
                  AND ((\(ids)::bigint[] IS NOT NULL AND r.id = ANY(\(ids)::bigint[]))
                       OR (\(ids)::bigint[] IS NULL AND r.id > \(after)
                           AND r.received_at > now() - make_interval(secs => \(windowSeconds))
                           AND r.received_at <= now() - make_interval(secs => \(olderSeconds))))
                ORDER BY r.id
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), matched AS MATERIALIZED (
                -- By Herald's own id, which every send carries (WhatsApp's biz_opaque_callback_data,
                -- Twilio's StatusCallback query), through the primary key: messages has no index on
                -- provider_message_id, so that its updates stay HOT (migration 0007). Guards against
                -- an id that is not this message's (another sender echoing colliding ids, or the
                -- holder of another channel's secret naming it): one of the channels that share
                -- the secret that verified the receipt (migration 0009, never "any"), and a provider id that is the message's own, or none recorded yet, or
                -- one of several tries (an ambiguous try may have been accepted under another id).
                -- LATERAL … LIMIT 1 keeps this a primary-key probe per receipt: as a plain join the
                -- planner, blind to `pending`'s size, hashes all of messages (seconds at 1,000,000).
                -- A receipt for an earlier part of a multi-request message (migration 0017: the
                -- audio before its text) matches too, but only its `failed` counts: the message
                -- follows its last part, which carries its provider id.
                SELECT p.id, p.provider_message_id, p.callback_message_id, p.channel_ids,
                       CASE WHEN t.earlier_part AND p.effect IS DISTINCT FROM 'failed' THEN NULL ELSE p.effect END AS effect,
                       p.error_code, p.error, p.at, t.message_id, t.earlier_part
                FROM pending p
                CROSS JOIN LATERAL (
                    SELECT m.id AS message_id,
                           coalesce(p.provider_message_id = ANY(m.part_provider_message_ids), false) AS earlier_part
                    FROM herald.messages m
                    WHERE m.id = p.callback_message_id
                      AND m.channel_id = ANY(p.channel_ids)
                      AND (m.provider_message_id IS NULL OR m.provider_message_id = p.provider_message_id OR m.attempts > 1
                           OR p.provider_message_id = ANY(m.part_provider_message_ids))
                    LIMIT 1
                ) t
            ), jobs_seen AS MATERIALIZED (
                SELECT j.message_id FROM herald.jobs j WHERE j.message_id IN (SELECT message_id FROM matched)
            ), jobs_free AS MATERIALIZED (
                SELECT j.message_id FROM herald.jobs j
                WHERE j.message_id IN (SELECT message_id FROM matched)
                  AND (j.lease_owner IS NULL OR j.run_at <= now())
                FOR UPDATE SKIP LOCKED
            ), locked AS MATERIALIZED (
                SELECT m.id, m.status
                FROM herald.messages m
                WHERE m.id IN (SELECT message_id FROM matched)
                  AND (m.id NOT IN (SELECT message_id FROM jobs_seen) OR m.id IN (SELECT message_id FROM jobs_free))
                ORDER BY m.id
                FOR UPDATE
            ), folded AS (
                SELECT mt.message_id,
                       bool_or(mt.effect = 'sent') AS any_sent,
                       bool_or(mt.effect = 'delivered') AS any_delivered,
                       bool_or(mt.effect = 'read') AS any_read,
                       bool_or(mt.effect = 'failed') AS any_failed,
                       min(mt.at) FILTER (WHERE mt.effect IS NOT NULL) AS first_at,
                       min(mt.at) FILTER (WHERE mt.effect = 'delivered') AS delivered_at,
                       min(mt.at) FILTER (WHERE mt.effect = 'read') AS read_at,
                       min(mt.at) FILTER (WHERE mt.effect = 'failed') AS failed_at,
                       (array_agg(mt.error_code ORDER BY mt.id) FILTER (WHERE mt.effect = 'failed'))[1] AS error_code,
                       (array_agg(mt.error ORDER BY mt.id) FILTER (WHERE mt.effect = 'failed'))[1] AS error,
                       (array_agg(mt.provider_message_id ORDER BY mt.id) FILTER (WHERE NOT mt.earlier_part))[1] AS provider_message_id
                FROM matched mt
                WHERE mt.message_id IN (SELECT id FROM locked)
                GROUP BY mt.message_id
            ), next AS (
                SELECT l.id, l.status AS old_status,
                       CASE WHEN l.status IN ('read', 'failed', 'skipped', 'cancelled') THEN l.status
                            WHEN f.any_read THEN 'read'
                            WHEN f.any_failed THEN 'failed'
                            WHEN f.any_delivered AND l.status IN ('queued', 'sent') THEN 'delivered'
                            WHEN f.any_sent AND l.status = 'queued' THEN 'sent'
                            ELSE l.status
                       END AS status,
                       f.first_at, f.delivered_at, f.read_at, f.failed_at, f.error_code, f.error, f.provider_message_id
                FROM locked l JOIN folded f ON f.message_id = l.id
            ), changed AS (
                UPDATE herald.messages m SET
                    status = n.status,
                    provider_message_id = coalesce(m.provider_message_id, n.provider_message_id),
                    sent_at = CASE WHEN m.sent_at IS NULL AND n.status IN ('sent', 'delivered', 'read')
                                   THEN n.first_at ELSE m.sent_at END,
                    delivered_at = CASE WHEN m.delivered_at IS NULL AND n.status IN ('delivered', 'read')
                                        THEN n.delivered_at ELSE m.delivered_at END,
                    read_at = CASE WHEN m.read_at IS NULL AND n.status = 'read' THEN n.read_at ELSE m.read_at END,
                    failed_at = CASE WHEN n.status = 'failed' AND n.old_status <> 'failed' THEN n.failed_at ELSE m.failed_at END,
                    error_code = CASE WHEN n.status = 'failed' AND n.old_status <> 'failed' THEN n.error_code ELSE m.error_code END,
                    error = CASE WHEN n.status = 'failed' AND n.old_status <> 'failed' THEN n.error ELSE m.error END
                FROM next n
                WHERE m.id = n.id
                  AND (n.status <> n.old_status
                       OR (m.provider_message_id IS NULL AND n.provider_message_id IS NOT NULL AND n.status NOT IN ('skipped', 'cancelled'))
                       OR (m.delivered_at IS NULL AND n.delivered_at IS NOT NULL AND n.status IN ('delivered', 'read'))
                       OR (m.read_at IS NULL AND n.read_at IS NOT NULL AND n.status = 'read'))
                RETURNING m.id, n.old_status, n.status
            ), unqueued AS (
                DELETE FROM herald.jobs j USING changed c
                WHERE j.message_id = c.id AND c.old_status = 'queued' AND c.status <> 'queued'
                RETURNING j.message_id
            ), marked AS (
                UPDATE herald.delivery_receipts r SET message_id = mt.message_id, applied_at = now()
                FROM matched mt
                WHERE r.id = mt.id AND mt.message_id IN (SELECT id FROM locked)
                RETURNING r.id
            ), provider_opt_outs AS MATERIALIZED ( -- consent (issue 19): a failed receipt with 21610 / 131050 opts the contact out
                SELECT herald.record_provider_opt_outs(array_agg(n.id), array_agg(n.error_code)) AS inserted FROM next n WHERE n.status = 'failed' AND n.old_status <> 'failed' AND n.id IN (SELECT id FROM changed)
            )
            SELECT (SELECT count(*) FROM pending) AS examined, (SELECT count(*) FROM marked) AS applied,
                   (SELECT count(*) FROM changed) AS messages_changed, (SELECT count(*) FROM unqueued) AS jobs_deleted,
                   (SELECT max(id) FROM pending) AS last_id, (SELECT inserted FROM provider_opt_outs) AS provider_opt_outs -- consent (issue 19)
            """
        let row = try await connection.query(query)[0]
        return ReceiptApplication(examined: try row.decode(Int.self, "examined"), applied: try row.decode(Int.self, "applied"),
                                  messagesChanged: try row.decode(Int.self, "messages_changed"), lastID: try row.decode(Int64?.self, "last_id"))
    }

    /// Records that contacts wrote to the business on WhatsApp: `last_inbound_at` moves to the
    /// message's time (forward only) for every contact whose `phone` is the sender's.
    /// - Parameter messages: the sender's phone as stored in `contacts.phone` (E.164 with `+`) and when.
    /// - Returns: the number of contacts updated.
    @discardableResult
    public func recordInbound(_ messages: [(phone: String, at: Date)], on connection: PostgresConnection) async throws -> Int {
        guard !messages.isEmpty else { return 0 }
        let phones = messages.map(\.phone), times = messages.map(\.at)
        return try await connection.execute("""
            UPDATE herald.contacts c SET last_inbound_at = i.at
            FROM (SELECT phone, max(at) AS at FROM unnest(\(phones)::text[], \(times)::timestamptz[]) AS i(phone, at)
                  GROUP BY phone) i
            WHERE c.phone = i.phone AND (c.last_inbound_at IS NULL OR c.last_inbound_at < i.at)
            """)
    }

    /// Deletes receipts that never matched a message and were received more than `olderThan` ago,
    /// at most `limit` at once (oldest first, through `delivery_receipts_unapplied`), so a pile of
    /// unmatched receipts (another tool sharing the number, a flood of validly signed noise) cannot
    /// grow forever. Run by the scheduler's leader; see ``UnmatchedReceiptRetention``.
    /// - Returns: the number deleted; `limit` means there may be more.
    @discardableResult
    public func deleteUnmatched(olderThan: Duration, limit: Int = 10_000, on connection: PostgresConnection) async throws -> Int {
        let seconds = olderThan.inSeconds
        return try await connection.execute("""
            DELETE FROM herald.delivery_receipts
            WHERE id IN (SELECT id FROM herald.delivery_receipts
                         WHERE applied_at IS NULL AND received_at < now() - make_interval(secs => \(seconds))
                         ORDER BY received_at LIMIT \(limit))
            """)
    }

    /// The enabled and disabled channels whose provider sends webhooks (`whatsapp_cloud`, `twilio`,
    /// and `sandbox`, whose simulated receipts are signed when its settings say how).
    public func webhookChannels(on connection: PostgresConnection) async throws -> [ChannelRow] {
        try await connection.query("""
            SELECT id, name, kind, provider, settings::text AS settings, enabled FROM herald.channels
            WHERE provider IN ('whatsapp_cloud', 'twilio', 'sandbox') ORDER BY id
            """).map { try ChannelRow($0) }
    }
}
