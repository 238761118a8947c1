-- 0009: a receipt applies only to messages of the channels whose secret verified it, and a
-- replayed receipt is stored once.
--
-- ## Scope
-- `herald webhooks` verifies a request's signature before reading it, with the secrets of the
-- configured channels; the channels that share the secret that verified it (the same Meta app and
-- phone number, the same Twilio account) are the only ones it may speak for. channel_ids records
-- them per receipt, and the applier matches a receipt only to a message of one of them
-- (ReceiptStore.swift): whoever holds app A's secret cannot move channel B's messages by naming
-- them. A receipt with neither channel_ids nor channel_id matches nothing.
--
-- ## Replays
-- Meta retries notifications for days and Twilio retries callbacks: the same receipt may arrive
-- many times. One row per (provider, provider message id, status, time of the event, error code,
-- channel that verified it) is kept; the insert skips the others (ON CONFLICT DO NOTHING). The
-- channel is part of the key so that a receipt forged under another channel's secret can never
-- pass for an earlier copy of the genuine one and have it skipped. Rows already stored twice are
-- folded first, keeping the first received (the one that was applied).
SET LOCAL lock_timeout = '5s';

ALTER TABLE herald.delivery_receipts ADD COLUMN channel_ids bigint[];

DELETE FROM herald.delivery_receipts r
USING herald.delivery_receipts d
WHERE d.provider = r.provider
  AND d.provider_message_id = r.provider_message_id
  AND d.status = r.status
  AND d.occurred_at IS NOT DISTINCT FROM r.occurred_at
  AND d.error_code IS NOT DISTINCT FROM r.error_code
  AND d.channel_id IS NOT DISTINCT FROM r.channel_id
  AND d.id < r.id;

-- The expressions must stay exactly as ReceiptStore.insert's ON CONFLICT names them.
CREATE UNIQUE INDEX delivery_receipts_once ON herald.delivery_receipts
    (provider, provider_message_id, status, (coalesce(occurred_at, '-infinity'::timestamptz)), (coalesce(error_code, '')),
     (coalesce(channel_id, 0)));
