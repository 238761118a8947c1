-- 0004: per-channel rate limits that hold across every worker process on every machine.
--
-- One token bucket per channel, kept in PostgreSQL because that is the one thing every worker
-- already shares. Capacity `channels.burst`, refill `channels.rate_per_second`, so over any window
-- of T seconds a channel sends at most burst + rate × T: at most rate + burst in any second.
-- Workers take tokens for a whole batch inside their claim statement (herald.take_tokens is
-- called from the claim's first CTE), so the limiter costs no extra round trip; tokens a claim
-- could not use (fewer jobs due than granted) go straight back in the same statement.
-- The rate and burst are read from `channels` on every take, so a change applies at once.
--
-- A safety margin for delivery jitter. Tokens are taken before the sends leave, and a busy
-- machine delays some sends more than others (tens of milliseconds); seen at the provider, a
-- window can then hold a little more than was granted in any one second. So the bucket holds at
-- most burst − 0.1 s × rate tokens (never less than half the burst, nor less than one) and
-- refills at 98% of the rate: the provider sees at most rate + burst in any second, and still at
-- least 97% of the rate over a minute.
--
-- A provider's "slow down" (HTTP 429, Meta 130429, Twilio 20429) pauses the whole channel for
-- every worker: herald.throttle_channel empties the bucket and moves `refreshed_at` into the
-- future; no tokens accrue until then.
CREATE TABLE herald.rate_buckets (
    channel_id   bigint PRIMARY KEY,
    tokens       double precision NOT NULL,
    -- Tokens are accrued from this instant; in the future while the channel is throttled.
    refreshed_at timestamptz NOT NULL
) WITH (fillfactor = 50);

-- Takes up to p_wanted tokens. granted: how many were taken (0 when none are available);
-- wait_seconds: when it is worth asking again (half a batch or half the bucket accrued, or the
-- end of a throttle), so idle workers neither spin nor let the bucket overflow unused.
CREATE FUNCTION herald.take_tokens(p_channel bigint, p_wanted integer,
                                   OUT granted integer, OUT wait_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_rate      double precision;
    v_burst     integer;
    v_tokens    double precision;
    v_refreshed timestamptz;
    v_now       timestamptz := clock_timestamp();
    v_need      double precision;
    v_capacity  double precision;
BEGIN
    SELECT rate_per_second::float8 * 0.98, burst INTO v_rate, v_burst FROM herald.channels WHERE id = p_channel;
    IF NOT FOUND OR p_wanted <= 0 THEN
        granted := 0; wait_seconds := 1; RETURN;
    END IF;
    v_capacity := greatest(1.0, v_burst / 2.0, v_burst - 0.1 * v_rate);
    SELECT tokens, refreshed_at INTO v_tokens, v_refreshed FROM herald.rate_buckets WHERE channel_id = p_channel FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at) VALUES (p_channel, v_capacity, v_now)
        ON CONFLICT (channel_id) DO NOTHING;
        SELECT tokens, refreshed_at INTO v_tokens, v_refreshed FROM herald.rate_buckets WHERE channel_id = p_channel FOR UPDATE;
    END IF;
    IF v_refreshed > v_now THEN
        -- Throttled by the provider until refreshed_at.
        granted := 0;
        wait_seconds := extract(epoch FROM v_refreshed - v_now) + 1.0 / v_rate;
        RETURN;
    END IF;
    v_tokens := least(v_capacity, v_tokens + v_rate * extract(epoch FROM v_now - v_refreshed));
    granted := least(p_wanted::float8, floor(v_tokens))::integer;
    v_tokens := v_tokens - granted;
    UPDATE herald.rate_buckets SET tokens = v_tokens, refreshed_at = v_now WHERE channel_id = p_channel;
    v_need := greatest(1.0, least(p_wanted::float8, v_capacity) / 2.0);
    wait_seconds := greatest(0.0, (v_need - v_tokens) / v_rate);
END
$$;

-- Gives back tokens taken but not used (a claim found fewer due jobs than it was granted).
CREATE FUNCTION herald.return_tokens(p_channel bigint, p_count integer) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF p_count > 0 THEN
        UPDATE herald.rate_buckets b
        SET tokens = least(greatest(1.0, c.burst / 2.0, c.burst - 0.1 * 0.98 * c.rate_per_second::float8), b.tokens + p_count)
        FROM herald.channels c WHERE c.id = b.channel_id AND b.channel_id = p_channel;
    END IF;
    RETURN p_count;
END
$$;

-- Pauses a channel for every worker: no tokens until now + p_seconds.
CREATE FUNCTION herald.throttle_channel(p_channel bigint, p_seconds double precision) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at)
    VALUES (p_channel, 0, clock_timestamp() + make_interval(secs => p_seconds))
    ON CONFLICT (channel_id) DO UPDATE
    SET tokens = 0, refreshed_at = greatest(herald.rate_buckets.refreshed_at, excluded.refreshed_at);
$$;
