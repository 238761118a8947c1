-- 0002: Herald's own tables: one message per broadcast × contact (history, what analysts read)
-- and the hot job queue (only work that is still to do).
--
-- Why two tables. `messages` grows by millions of rows a day and is read by reports; `jobs` holds
-- only the messages still waiting to be sent. A job row is inserted at expansion and DELETED the
-- moment its message reaches an outcome, so the queue table stays as small as the backlog, its
-- index stays shallow, and vacuum has little to do however many messages were sent before. The
-- claim query never touches `messages`' millions of finished rows.
--
-- Leases without a second column. A claim moves `run_at` to the lease's expiry and sets
-- `lease_owner`. "Claimable" is then just `run_at <= now()`: a job whose worker died becomes
-- claimable again by itself when the lease runs out, with no rescuer pass and no extra index.
-- Retries use the same column (`run_at` = when to try again, `lease_owner` cleared).
--
-- Bloat. Every claim and outcome rewrites or deletes a job row, so the table churns. fillfactor 70
-- leaves room on each page; autovacuum runs after 1% of the table (or 1,000 rows) is dead and
-- without cost-based sleeping, so dead index entries do not pile up in front of the claim scan.
-- Nothing Herald does holds a transaction open across a provider call, which would pin the xmin
-- horizon and stall vacuum (sessions set idle_in_transaction_session_timeout as a guard).
--
-- Foreign keys. `messages` and `jobs` are written only by Herald, in bulk (a million rows per
-- expansion); per-row foreign-key triggers would double the cost of expansion, so their
-- references are kept by Herald's own statements instead of declared constraints. `messages`
-- also outlives deleted contacts, as history should.

-- Herald's own columns on broadcasts (not part of the contract; nullable, the admin tool ignores them).
-- expansion_cursor: the highest contact id already expanded, so an interrupted expansion resumes
-- where it stopped; expanded_at: when expansion finished (a broadcast cannot complete before).
ALTER TABLE herald.broadcasts
    ADD COLUMN expansion_cursor bigint,
    ADD COLUMN expanded_at timestamptz;

CREATE TABLE herald.messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    broadcast_id        bigint NOT NULL,
    contact_id          bigint NOT NULL,
    channel_id          bigint NOT NULL,
    address             text,
    -- 'sending' is not stored: message_status derives it from a live lease in jobs.
    status              text NOT NULL DEFAULT 'queued' CONSTRAINT messages_status_check
                            CHECK (status IN ('queued', 'sent', 'delivered', 'read', 'failed', 'skipped', 'cancelled')),
    skip_reason         text CONSTRAINT messages_skip_reason_check
                            CHECK (skip_reason IN ('opted_out', 'invalid_address', 'outside_whatsapp_window')),
    error_code          text,
    error               text,
    -- 'not_sent' (the provider provably never got it) or 'ambiguous' (it may have): see the worker.
    failure_kind        text,
    attempts            integer NOT NULL DEFAULT 0,
    provider_message_id text,
    segments            integer,
    queued_at           timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    failed_at           timestamptz,
    -- One message per contact and broadcast: makes expansion idempotent and resumable.
    CONSTRAINT messages_broadcast_contact UNIQUE (broadcast_id, contact_id)
) WITH (fillfactor = 90);

-- Receipts find their message by the provider's id.
CREATE INDEX messages_provider_message_id ON herald.messages (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
-- Reports count a broadcast's messages by status with an index-only scan.
CREATE INDEX messages_broadcast_status ON herald.messages (broadcast_id, status);

CREATE TABLE herald.jobs (
    message_id   bigint PRIMARY KEY,
    broadcast_id bigint NOT NULL,
    channel_id   bigint NOT NULL,
    -- When the job may be claimed next: now for fresh work, the lease expiry while claimed, the
    -- backoff deadline for a retry.
    run_at       timestamptz NOT NULL DEFAULT now(),
    lease_owner  text,
    -- Claims so far, lease expiries included: a job that kills its workers stops being retried.
    claims       integer NOT NULL DEFAULT 0
) WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
-- The claim query is `WHERE broadcast_id = $1 AND run_at <= now() ORDER BY run_at LIMIT n FOR
-- UPDATE SKIP LOCKED`: exactly this index, read from its start. Claimed rows move to the end
-- (run_at = lease expiry), so the scan does not wade through rows other workers hold.
CREATE INDEX jobs_claim ON herald.jobs (broadcast_id, run_at);

-- Wake-ups. One notification per statement, not per row (a million-row expansion sends one), and
-- PostgreSQL folds duplicates within a transaction. The scheduler listens to herald_broadcasts;
-- workers listen to herald_broadcasts (pause/resume/cancel) and herald_jobs (new work).
CREATE FUNCTION herald.notify_broadcasts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_broadcasts', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER broadcasts_notify
    AFTER INSERT OR UPDATE OF status, send_at OR DELETE ON herald.broadcasts
    FOR EACH STATEMENT EXECUTE FUNCTION herald.notify_broadcasts();
