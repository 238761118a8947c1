-- 0020: one claim statement serves several channels (QueueStore.claim(on:requests:)).
--
-- The worker passes its requests as parallel arrays (broadcast, channel, tokens wanted, channel
-- kind, jobs to scan). This function turns them into rows, numbered from 1 in array order. It is
-- PL/pgSQL on purpose, with a fixed row estimate: `unnest` over the arrays directly would be
-- estimated from the array's length in a custom plan (a parameter's value is known) and as 100
-- rows in the generic one, so the generic plan would always look dearer and PostgreSQL would plan
-- the long claim statement again for every claim (about 0.5 ms each).
CREATE FUNCTION herald.claim_requests(p_broadcasts bigint[], p_channels bigint[], p_wanted integer[], p_kinds text[],
                                      p_scans integer[])
RETURNS TABLE (broadcast_id bigint, channel_id bigint, wanted integer, kind text, scan integer, i bigint)
LANGUAGE plpgsql STABLE ROWS 8 AS $$
BEGIN
    RETURN QUERY SELECT * FROM unnest(p_broadcasts, p_channels, p_wanted, p_kinds, p_scans) WITH ORDINALITY;
END
$$;
