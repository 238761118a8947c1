-- 0003: what analysts read (../shared/contract.md, section 2).

CREATE TABLE herald.delivery_receipts (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    status              text NOT NULL,
    error_code          text,
    occurred_at         timestamptz,
    received_at         timestamptz NOT NULL DEFAULT now(),
    payload             jsonb NOT NULL DEFAULT '{}',
    -- Herald's message, once matched (receipts may arrive before the send is recorded).
    message_id          bigint,
    applied_at          timestamptz
);
CREATE INDEX delivery_receipts_provider_message_id ON herald.delivery_receipts (provider_message_id);
CREATE INDEX delivery_receipts_unapplied ON herald.delivery_receipts (received_at) WHERE applied_at IS NULL;

-- One row per message. A queued message whose job is held under a live lease shows as 'sending'.
CREATE VIEW herald.message_status AS
SELECT m.broadcast_id,
       m.contact_id,
       m.channel_id,
       m.address,
       CASE WHEN m.status = 'queued' AND j.lease_owner IS NOT NULL AND j.run_at > now()
            THEN 'sending' ELSE m.status END AS status,
       m.skip_reason,
       m.error_code,
       m.error,
       m.attempts,
       m.provider_message_id,
       m.segments,
       m.queued_at,
       m.sent_at,
       m.delivered_at,
       m.read_at,
       m.failed_at,
       m.id AS message_id
FROM herald.messages m
LEFT JOIN herald.jobs j ON j.message_id = m.id;

-- One row per broadcast; each status column counts messages whose status is exactly that one.
CREATE VIEW herald.broadcast_report AS
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
    SELECT count(*) AS recipients,
           count(*) FILTER (WHERE m.status = 'queued') AS queued,
           count(*) FILTER (WHERE m.status = 'sent') AS sent,
           count(*) FILTER (WHERE m.status = 'delivered') AS delivered,
           count(*) FILTER (WHERE m.status = 'read') AS read,
           count(*) FILTER (WHERE m.status = 'failed') AS failed,
           count(*) FILTER (WHERE m.status = 'skipped') AS skipped,
           count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled
    FROM herald.messages m
    WHERE m.broadcast_id = b.id
) s ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS sending
    FROM herald.jobs j
    WHERE j.broadcast_id = b.id AND j.lease_owner IS NOT NULL AND j.run_at > now()
) l ON true;
