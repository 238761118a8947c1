-- A lease row per batch: the claim deletes the due jobs and writes one row holding their ids
-- (a DELETE per message, one INSERT per batch); the record deletes that row and, for retries
-- only, inserts jobs again. An expired lease is turned back into jobs by the next claim.
WITH expired AS (
    DELETE FROM bench_leases WHERE broadcast_id = :b AND expires_at < now() RETURNING message_ids
), due AS (
    SELECT message_id, claims FROM herald.jobs
    WHERE broadcast_id = :b AND run_at <= now()
    ORDER BY run_at LIMIT 200
    FOR UPDATE SKIP LOCKED
), taken AS (
    DELETE FROM herald.jobs j USING due WHERE j.message_id = due.message_id
    RETURNING j.message_id, j.claims
), lease AS (
    INSERT INTO bench_leases (owner, broadcast_id, expires_at, message_ids, claims)
    SELECT 'bench', :b, now() + interval '60 seconds', array_agg(message_id), array_agg(claims + 1)
    FROM taken HAVING count(*) > 0
    RETURNING id, message_ids
)
-- Every shape reads the claimed messages (the worker joins them with their contacts).
SELECT lease.id AS lease,
       (SELECT array_agg(m.id) FROM herald.messages m WHERE m.id = ANY(lease.message_ids)) AS ids
FROM lease \gset
WITH held AS MATERIALIZED (
    DELETE FROM bench_leases WHERE id = :lease AND owner = 'bench' RETURNING broadcast_id
), @HELD_RECORD@
SELECT count(*) FROM applied;
