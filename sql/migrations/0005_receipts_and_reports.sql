-- 0005: delivery receipts applied in batches, and reports that stay fast at millions of messages.
--
-- ## Receipts
-- `herald webhooks` stores every receipt raw in delivery_receipts first (one INSERT per batch of
-- HTTP requests, before it answers 200), then applies the batch to herald.messages in one
-- statement (see ReceiptStore.swift). The columns added here are Herald's own (the contract's
-- columns are unchanged):
--   effect               what the receipt means for the message, in Herald's words (sent,
--                        delivered, read, failed), NULL when it changes nothing (Twilio's
--                        `queued`, `accepted`, Meta's `deleted`…); `status` keeps the provider's word
--   callback_message_id  Herald's message id echoed by Meta (`biz_opaque_callback_data`): matches
--                        the receipt when the answer to the send was lost
--   error                the provider's error text of a failed receipt
--   channel_id           the channel whose signature accepted it
-- A receipt whose message is not known yet stays with applied_at NULL and is retried (the
-- message's send may not be recorded yet); delivery_receipts_unapplied (0003) serves that pass.
ALTER TABLE herald.delivery_receipts
    ADD COLUMN effect text CONSTRAINT delivery_receipts_effect_check
        CHECK (effect IN ('sent', 'delivered', 'read', 'failed')),
    ADD COLUMN callback_message_id bigint,
    ADD COLUMN error text,
    ADD COLUMN channel_id bigint;

-- ## Counting messages by status without counting
--
-- broadcast_report used to count a broadcast's messages at every call: at 1,000,000 messages that
-- is a scan of a million index entries (hundreds of milliseconds, more when the visibility map lags
-- behind the worker's updates), repeated by every dashboard refresh. COUNT(*) over the hot tables
-- for dashboards is a known way for a queue to hurt itself (hexpm #1773).
--
-- Instead every statement that writes herald.messages also writes how it changed the counts, in
-- the same transaction: STATEMENT-level triggers with transition tables aggregate the statement's
-- old and new rows into one delta per (broadcast, status) and append it to broadcast_counts. So:
--   * every writer is covered without knowing about it: the scheduler's expansion, the worker's
--     batched outcomes, cancellation, receipts, and the admin tool or an operator fixing rows by
--     hand;
--   * the cost is per statement, not per row: a worker batch of 200 outcomes adds two rows
--     (-200 queued, +200 sent), an expansion chunk a few;
--   * the counts are exact under concurrency: a delta commits or rolls back with the change it
--     describes, so any snapshot sees counts that equal count(*) over the messages it sees.
-- Why append and not UPDATE one row per (broadcast, status): every worker of a broadcast would
-- update the same few rows, queueing all their commits behind one row lock, and two statements
-- taking those row locks in different orders could deadlock with their message locks. Appending
-- takes no lock anyone else wants. Readers sum a broadcast's rows (an index range scan of a few
-- thousand rows at most: well under a millisecond per thousand); herald.compact_broadcast_counts()
-- folds them back into one row per (broadcast, status) and is run every few seconds by
-- `herald webhooks` (and may be run by anyone, any time: it is safe concurrently).
CREATE TABLE herald.broadcast_counts (
    broadcast_id bigint NOT NULL,
    status       text NOT NULL,
    n            bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_insert_scale_factor = 0.05);
CREATE INDEX broadcast_counts_broadcast ON herald.broadcast_counts (broadcast_id) INCLUDE (status, n);

CREATE FUNCTION herald.count_messages_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO herald.broadcast_counts (broadcast_id, status, n)
    SELECT broadcast_id, status, count(*) FROM new_rows GROUP BY broadcast_id, status;
    RETURN NULL;
END
$$;

CREATE FUNCTION herald.count_messages_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Updates that leave every status as it was (attempts, error of a retry) add nothing.
    INSERT INTO herald.broadcast_counts (broadcast_id, status, n)
    SELECT broadcast_id, status, sum(n)
    FROM (SELECT broadcast_id, status, count(*) AS n FROM new_rows GROUP BY 1, 2
          UNION ALL
          SELECT broadcast_id, status, -count(*) FROM old_rows GROUP BY 1, 2) d
    GROUP BY broadcast_id, status
    HAVING sum(n) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION herald.count_messages_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO herald.broadcast_counts (broadcast_id, status, n)
    SELECT broadcast_id, status, -count(*) FROM old_rows GROUP BY broadcast_id, status;
    RETURN NULL;
END
$$;

CREATE FUNCTION herald.count_messages_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM herald.broadcast_counts;
    RETURN NULL;
END
$$;

-- Column lists (UPDATE OF status) cannot be combined with transition tables, hence the HAVING above.
CREATE TRIGGER messages_count_insert AFTER INSERT ON herald.messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION herald.count_messages_inserted();
CREATE TRIGGER messages_count_update AFTER UPDATE ON herald.messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION herald.count_messages_updated();
CREATE TRIGGER messages_count_delete AFTER DELETE ON herald.messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION herald.count_messages_deleted();
CREATE TRIGGER messages_count_truncate AFTER TRUNCATE ON herald.messages
    FOR EACH STATEMENT EXECUTE FUNCTION herald.count_messages_truncated();

-- Messages written before this migration. CREATE TRIGGER already holds a lock that blocks writes
-- to herald.messages until this transaction commits, so nothing is counted twice or missed.
LOCK TABLE herald.messages IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO herald.broadcast_counts (broadcast_id, status, n)
SELECT broadcast_id, status, count(*) FROM herald.messages GROUP BY broadcast_id, status;

-- Folds each busy broadcast's deltas into one row per status. Correct under concurrency: the
-- DELETE removes exactly the rows of its snapshot and the INSERT puts back their sums in the same
-- transaction, so readers see either the deltas or their sum; a concurrent compaction waits on the
-- rows this one deletes, then skips them; deltas appended meanwhile are left for the next run.
-- Returns the number of rows removed.
CREATE FUNCTION herald.compact_broadcast_counts(max_broadcasts integer DEFAULT 1000) RETURNS bigint
LANGUAGE sql AS $$
    WITH busy AS (
        SELECT broadcast_id FROM herald.broadcast_counts
        GROUP BY broadcast_id
        HAVING count(*) > count(DISTINCT status) OR bool_or(n = 0)
        LIMIT max_broadcasts
    ), gone AS (
        DELETE FROM herald.broadcast_counts c USING busy b
        WHERE c.broadcast_id = b.broadcast_id
        RETURNING c.broadcast_id, c.status, c.n
    ), kept AS (
        INSERT INTO herald.broadcast_counts (broadcast_id, status, n)
        SELECT broadcast_id, status, sum(n) FROM gone GROUP BY broadcast_id, status HAVING sum(n) <> 0
    )
    SELECT count(*) FROM gone
$$;

-- ## broadcast_report, from the counters
-- Same columns, names, types and order as 0003 (the contract). Two lookups per broadcast:
--   * the broadcast's rows of broadcast_counts (index range scan), summed;
--   * `sending`: its jobs under a live lease (jobs_claim index: broadcast_id, then run_at > now()
--     reads only the leased and backed-off jobs, a few thousand at most), which are still
--     `queued` in messages, hence subtracted from `queued`. A job exists exactly while its
--     message is queued: the worker's and the scheduler's statements delete a job together with
--     its message's move out of `queued`, and receipts for a message a worker holds are held
--     back until the worker has recorded it (ReceiptStore), so the subtraction is exact.
-- Measured at 1,000,000 messages: see scripts/bench-receipts.
CREATE OR REPLACE VIEW herald.broadcast_report AS
SELECT b.id AS broadcast_id,
       b.name,
       c.name AS channel,
       b.status,
       b.send_at,
       b.started_at,
       b.finished_at,
       coalesce(s.recipients, 0) AS recipients,
       coalesce(s.queued, 0) - coalesce(l.sending, 0) AS queued,
       coalesce(l.sending, 0) AS sending,
       coalesce(s.sent, 0) AS sent,
       coalesce(s.delivered, 0) AS delivered,
       coalesce(s.read, 0) AS read,
       coalesce(s.failed, 0) AS failed,
       coalesce(s.skipped, 0) AS skipped,
       coalesce(s.cancelled, 0) AS cancelled
FROM herald.broadcasts b
JOIN herald.channels c ON c.id = b.channel_id
LEFT JOIN LATERAL (
    SELECT sum(k.n)::bigint AS recipients,
           (sum(k.n) FILTER (WHERE k.status = 'queued'))::bigint AS queued,
           (sum(k.n) FILTER (WHERE k.status = 'sent'))::bigint AS sent,
           (sum(k.n) FILTER (WHERE k.status = 'delivered'))::bigint AS delivered,
           (sum(k.n) FILTER (WHERE k.status = 'read'))::bigint AS read,
           (sum(k.n) FILTER (WHERE k.status = 'failed'))::bigint AS failed,
           (sum(k.n) FILTER (WHERE k.status = 'skipped'))::bigint AS skipped,
           (sum(k.n) FILTER (WHERE k.status = 'cancelled'))::bigint AS cancelled
    FROM herald.broadcast_counts k
    WHERE k.broadcast_id = b.id
) s ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS sending
    FROM herald.jobs j
    WHERE j.broadcast_id = b.id AND j.run_at > now() AND j.lease_owner IS NOT NULL
) l ON true;

-- ## channel_report: per channel and hour
-- One row per channel and hour in which its messages reached an outcome at the provider: the
-- hour is that of `sent_at` (accepted by the provider), or of `failed_at` for a message that
-- failed without ever being accepted.
--   sent       accepted by the provider in that hour (whatever happened next)
--   delivered  of those, delivered (or read: a read message was delivered, even when Meta sends
--              no separate `delivered`)
--   read       of those, read
--   failed     messages of that hour that ended `failed` (before or after being accepted)
--   delivery_rate            delivered / sent, NULL when nothing was sent
--   median_time_to_delivered median of (delivered_at, or read_at when no delivered receipt came)
--                            minus sent_at, over the delivered ones
-- It reads herald.messages (one pass over the rows with an outcome); filter on `hour` and
-- `channel` in the query for dashboards over big histories.
CREATE VIEW herald.channel_report AS
SELECT m.channel_id,
       c.name AS channel,
       date_trunc('hour', coalesce(m.sent_at, m.failed_at)) AS hour,
       count(*) FILTER (WHERE m.sent_at IS NOT NULL) AS sent,
       count(*) FILTER (WHERE m.sent_at IS NOT NULL AND m.status IN ('delivered', 'read')) AS delivered,
       count(*) FILTER (WHERE m.sent_at IS NOT NULL AND m.status = 'read') AS read,
       count(*) FILTER (WHERE m.status = 'failed') AS failed,
       round(count(*) FILTER (WHERE m.sent_at IS NOT NULL AND m.status IN ('delivered', 'read'))::numeric
             / nullif(count(*) FILTER (WHERE m.sent_at IS NOT NULL), 0), 4) AS delivery_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(m.delivered_at, m.read_at) - m.sent_at)
           FILTER (WHERE m.sent_at IS NOT NULL AND m.status IN ('delivered', 'read')
                   AND coalesce(m.delivered_at, m.read_at) IS NOT NULL) AS median_time_to_delivered
FROM herald.messages m
JOIN herald.channels c ON c.id = m.channel_id
WHERE m.sent_at IS NOT NULL OR m.failed_at IS NOT NULL
GROUP BY m.channel_id, c.name, date_trunc('hour', coalesce(m.sent_at, m.failed_at));
