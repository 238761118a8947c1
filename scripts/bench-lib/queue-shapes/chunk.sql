-- A job row per chunk of 200 consecutive messages of a broadcast (lessons.md: "a batch of
-- recipients can itself be the unit of claimed work"): the claim leases one row and reads the
-- chunk's queued messages; the record deletes that row. Nothing per message but the messages.
WITH c AS (
    SELECT id FROM bench_chunks
    WHERE broadcast_id = :b AND run_at <= now()
    ORDER BY run_at LIMIT 1
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE bench_chunks k SET run_at = now() + interval '60 seconds', lease_owner = 'bench'
    FROM c WHERE k.id = c.id
    RETURNING k.id, k.first_id, k.last_id
)
SELECT leased.id AS chunk,
       (SELECT array_agg(m.id ORDER BY m.id) FROM herald.messages m
        WHERE m.id BETWEEN leased.first_id AND leased.last_id AND m.broadcast_id = :b AND m.status = 'queued') AS ids
FROM leased \gset
WITH held AS MATERIALIZED (
    DELETE FROM bench_chunks WHERE id = :chunk AND lease_owner = 'bench' RETURNING broadcast_id
), @HELD_RECORD@
SELECT count(*) FROM applied;
