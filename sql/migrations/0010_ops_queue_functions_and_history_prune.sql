-- 0010: what operations need from the database: cheap queue functions for autoscalers and
-- dashboards, and a prune that lets old history leave herald.messages.
--
-- ## Queue functions (KEDA's postgresql trigger, alerts, `psql`)
--
-- herald.due_messages(channel)            jobs a worker could claim right now: jobs of `sending`
--                                         broadcasts with run_at <= now() (scheduled broadcasts
--                                         still expanding, paused ones and retries backing off are
--                                         not due), for one channel by name or all (NULL).
-- herald.oldest_due_age_seconds(channel)  seconds the oldest of those has been due; 0 when none.
--
-- Cheap whatever the backlog, because neither counts the backlog: a job exists exactly while its
-- message is `queued` (0002), and broadcast_counts (0005) already holds each broadcast's queued
-- count, so due = queued − the jobs not yet due (`run_at > now()`: leased or backing off, a few
-- thousand at most, an index range scan of jobs_claim). The age is the first jobs_claim entry of
-- each `sending` broadcast. Measured with 1,000,000 due jobs: see BENCHMARKS.md ("queue functions").
--
-- They are SECURITY DEFINER with a pinned search_path so a monitoring login (KEDA's) needs only
-- EXECUTE, not SELECT on Herald's tables: granted to herald_runtime and herald_reader when those
-- roles exist, revoked from PUBLIC.
CREATE FUNCTION herald.due_messages(p_channel text DEFAULT NULL)
RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(sum(greatest(queued.n - waiting.n, 0)), 0)::bigint
    FROM herald.broadcasts b
    JOIN herald.channels c ON c.id = b.channel_id
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(k.n), 0) AS n FROM herald.broadcast_counts k
        WHERE k.broadcast_id = b.id AND k.status = 'queued'
    ) queued
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM herald.jobs j WHERE j.broadcast_id = b.id AND j.run_at > now()
    ) waiting
    WHERE b.status = 'sending' AND (p_channel IS NULL OR c.name = p_channel)
$$;

CREATE FUNCTION herald.oldest_due_age_seconds(p_channel text DEFAULT NULL)
RETURNS double precision LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(max(extract(epoch FROM now() - oldest.run_at)), 0)::float8
    FROM herald.broadcasts b
    JOIN herald.channels c ON c.id = b.channel_id
    CROSS JOIN LATERAL (
        SELECT j.run_at FROM herald.jobs j
        WHERE j.broadcast_id = b.id AND j.run_at <= now()
        ORDER BY j.run_at
        LIMIT 1
    ) oldest
    WHERE b.status = 'sending' AND (p_channel IS NULL OR c.name = p_channel)
$$;

-- ## History that leaves
--
-- herald.messages keeps one row per message forever: after a year of broadcasts, hundreds of
-- millions of rows nobody reads but vacuum, backups and every index still pay for. Herald prunes
-- the messages of broadcasts that finished (completed, cancelled, failed) more than a retention
-- period ago, when that period is set (HERALD_HISTORY_RETENTION_DAYS on `herald scheduler`; the
-- leader does it, see HistoryPruner.swift). Why this and not partitioning: every hot statement
-- finds a message by `id` (the worker's outcome, receipts by Herald's id) and the unique key is
-- (broadcast_id, contact_id); partitioning by time would need the partition key in both keys and
-- in every hot statement, and partitions by broadcast would be thousands of tables. A prune by
-- broadcast uses the index that already exists and takes no lock a sender wants: finished
-- broadcasts have no jobs, so no worker touches their rows.
--
-- * Batches: herald.prune_broadcast_messages deletes at most p_limit messages of one broadcast per
--   call (one short transaction each), so the send path never waits long behind it, and the
--   caller spaces the batches out.
-- * Reports survive: the DELETE trigger of 0005 appends negative deltas to broadcast_counts; the
--   same statement appends the positive ones back, so broadcast_report keeps an old broadcast's
--   final counts (sent, delivered, read, failed…) after its messages are gone. message_status and
--   the per-message views simply have no rows for it any more.
-- * HOT updates (0007) are untouched: no index on herald.messages is added; the marker column is
--   on broadcasts.
-- * Space: deleted rows become free space that new messages reuse (the table stops growing once
--   retention is reached); it is not returned to the operating system without a rewrite
--   (pg_repack, or VACUUM FULL in a maintenance window).
ALTER TABLE herald.broadcasts ADD COLUMN history_pruned_at timestamptz;
-- The pruner's "next broadcast whose history is due to go": a few rows at most match. A broadcast
-- the admin tool cancelled before it started may have no finished_at: its created_at counts.
CREATE INDEX broadcasts_history_to_prune ON herald.broadcasts ((coalesce(finished_at, created_at)))
    WHERE history_pruned_at IS NULL AND status IN ('completed', 'cancelled', 'failed');

CREATE FUNCTION herald.prune_broadcast_messages(p_broadcast bigint, p_limit integer) RETURNS integer
LANGUAGE sql AS $$
    WITH doomed AS (
        SELECT id FROM herald.messages WHERE broadcast_id = p_broadcast LIMIT p_limit
    ), gone AS (
        DELETE FROM herald.messages m USING doomed d WHERE m.id = d.id
        RETURNING m.status
    ), kept AS (
        INSERT INTO herald.broadcast_counts (broadcast_id, status, n)
        SELECT p_broadcast, status, count(*) FROM gone GROUP BY status
    )
    SELECT count(*)::integer FROM gone
$$;

DO $$
DECLARE
    r text;
BEGIN
    REVOKE EXECUTE ON FUNCTION herald.due_messages(text), herald.oldest_due_age_seconds(text) FROM PUBLIC;
    FOREACH r IN ARRAY ARRAY['herald_runtime', 'herald_reader'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION herald.due_messages(text), herald.oldest_due_age_seconds(text) TO %I', r);
        END IF;
    END LOOP;
END
$$;
