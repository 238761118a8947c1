-- Herald's shape today: one job row per message. The claim moves each job's run_at to the lease's
-- expiry (an UPDATE per message); the record deletes each finished job (a DELETE per message).
WITH due AS (
    SELECT message_id FROM herald.jobs
    WHERE broadcast_id = :b AND run_at <= now()
    ORDER BY run_at LIMIT 200
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE herald.jobs j
    SET run_at = now() + interval '60 seconds', lease_owner = 'bench', claims = j.claims + 1
    FROM due WHERE j.message_id = due.message_id
    RETURNING j.message_id
)
-- Every shape reads the claimed messages (the worker joins them with their contacts).
SELECT coalesce(array_agg(m.id), '{}') AS ids
FROM claimed JOIN herald.messages m ON m.id = claimed.message_id \gset
WITH @OUTCOMES@, finished AS (
    DELETE FROM herald.jobs j USING o
    WHERE j.message_id = o.message_id AND o.outcome <> 'retry' AND j.lease_owner = 'bench'
    RETURNING j.message_id
), retried AS (
    UPDATE herald.jobs j SET run_at = o.retry_at, lease_owner = NULL
    FROM o WHERE j.message_id = o.message_id AND o.outcome = 'retry' AND j.lease_owner = 'bench'
    RETURNING j.message_id
), @APPLIED(m.id IN (SELECT message_id FROM finished) OR m.id IN (SELECT message_id FROM retried))@
SELECT count(*) FROM applied;
