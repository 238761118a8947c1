-- 0019: recording provider opt-outs costs nothing when no send failed, and its plan is kept.
--
-- The worker's record statement and the receipt applier call herald.record_provider_opt_outs
-- with the failures of a batch. As a SQL-language function (0013) it was parsed and planned on
-- every call, and it was called for every batch, failures or not (an aggregate over no row
-- passes NULL arrays): about 5% of PostgreSQL's CPU when 1,000 channels send at 200 ms
-- (`perf` on the backends, BENCHMARKS.md). Now it is STRICT, so a batch without failures does
-- not call it at all, and PL/pgSQL, which keeps its statement's plan for the session.
-- Same arguments, result and behaviour.
CREATE OR REPLACE FUNCTION herald.record_provider_opt_outs(p_message_ids bigint[], p_error_codes text[])
RETURNS integer LANGUAGE plpgsql STRICT AS $$
BEGIN
    RETURN (SELECT coalesce(sum(herald.insert_opt_out(m.contact_id, ch.kind, 'provider', m.broadcast_id)), 0)::integer
            FROM unnest(p_message_ids, p_error_codes) AS f(message_id, error_code)
            JOIN herald.messages m ON m.id = f.message_id
            JOIN herald.channels ch ON ch.id = m.channel_id
            WHERE herald.is_provider_opt_out(ch.kind, f.error_code));
END
$$;
