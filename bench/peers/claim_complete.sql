-- pgbench script: one round of the plainest possible PostgreSQL queue, the ceiling any worker is
-- held against. Claim up to 100 ready rows with FOR UPDATE SKIP LOCKED, then mark them finished,
-- each in its own transaction (pgbench autocommits every statement).
WITH claimed AS (
    UPDATE queue_rows q
    SET state = 'claimed', claimed_at = now(), tries = q.tries + 1
    WHERE q.id IN (
        SELECT id FROM queue_rows
        WHERE state = 'ready'
        ORDER BY id
        LIMIT 100
        FOR UPDATE SKIP LOCKED)
    RETURNING q.id)
-- pgbench substitutes :claimed_ids as text; 0 (no such row) when nothing was ready.
SELECT coalesce(string_agg(id::text, ','), '0') AS claimed_ids FROM claimed \gset
UPDATE queue_rows SET state = 'finished' WHERE id IN (:claimed_ids);
