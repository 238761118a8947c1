-- The two alternative shapes' tables, next to Herald's own (which the per-message shape uses).
CREATE TABLE bench_leases (
    id bigserial PRIMARY KEY, owner text NOT NULL, broadcast_id bigint NOT NULL,
    expires_at timestamptz NOT NULL, message_ids bigint[] NOT NULL, claims int[] NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX bench_leases_expiry ON bench_leases (broadcast_id, expires_at);
CREATE TABLE bench_chunks (
    id bigserial PRIMARY KEY, broadcast_id bigint NOT NULL, first_id bigint NOT NULL,
    last_id bigint NOT NULL, run_at timestamptz NOT NULL DEFAULT now(), lease_owner text
) WITH (fillfactor = 70);
CREATE INDEX bench_chunks_claim ON bench_chunks (broadcast_id, run_at);
INSERT INTO bench_chunks (broadcast_id, first_id, last_id)
SELECT broadcast_id, min(id), max(id)
FROM (SELECT broadcast_id, id, (row_number() OVER (ORDER BY id) - 1) / 200 AS chunk FROM herald.messages) s
GROUP BY broadcast_id, chunk;
VACUUM ANALYZE bench_chunks;
CHECKPOINT;
