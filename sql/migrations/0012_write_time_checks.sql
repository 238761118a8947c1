-- 0012: write-time checks, limiter functions that cannot be pushed out of range, and edits of a
-- running broadcast stamped for re-validation.
--
-- ## Why checks at write time
-- A value the schema can reject should fail the admin tool's own INSERT or UPDATE, with a
-- constraint name, rather than reach a worker or the scheduler, where one bad row used to stop
-- every lane of every worker (`template_params = '[null]'`), crash a worker (`rate_per_second =
-- 1e-20` gave a wait of 1e20 s) or break the scheduler's session (`send_at = 'infinity'`).
--
-- ## Rows already stored
-- Each constraint is added NOT VALID (enforced for every write from now on, without scanning the
-- table under an ACCESS EXCLUSIVE lock), then validated in a block of its own: when old rows break
-- it, the constraint stays NOT VALID, a WARNING names it, and the migration still succeeds. Such
-- rows are never rewritten behind the admin tool's back; Herald copes with them at run time (the
-- limiter functions below clamp, the scheduler fails a broadcast whose data it cannot use, with
-- the reason in `error`). To finish the job after fixing the rows:
--   ALTER TABLE herald.<table> VALIDATE CONSTRAINT <name>;
-- (`SELECT conname FROM pg_constraint WHERE NOT convalidated AND connamespace = 'herald'::regnamespace`
-- lists what is left.)
--
-- ## Note on 0002's comment
-- 0002 says sessions set idle_in_transaction_session_timeout as a guard. Until this change none
-- did; every `herald` session now sets statement_timeout and idle_in_transaction_session_timeout
-- (HeraldPostgres' PostgresSessionSettings) and migrations run with lock_timeout (Migrator.swift).
SET LOCAL lock_timeout = '5s';

-- ## Arrays of strings
-- The contract's jsonb "array of strings" columns. A NULL column is allowed (the column is
-- nullable); an element that is null, a number, an object or an array is not. Later migrations
-- adding such columns use the same function.
CREATE FUNCTION herald.is_string_array(value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_typeof(value) = 'array'
       AND NOT jsonb_path_exists(value, 'strict $[*] ? (@.type() != "string")')
$$;

ALTER TABLE herald.broadcasts ADD CONSTRAINT broadcasts_template_params_strings
    CHECK (template_params IS NULL OR herald.is_string_array(template_params)) NOT VALID;

-- ## Finite send times
-- 'infinity' and '-infinity' are legal timestamptz values, but a broadcast due "never" or
-- "before time began" is a mistake, and arithmetic on them fails ("cannot subtract infinite
-- timestamps").
ALTER TABLE herald.broadcasts ADD CONSTRAINT broadcasts_send_at_finite
    CHECK (send_at IS NULL OR isfinite(send_at)) NOT VALID;

-- ## Rates and bursts in a sane range
-- rate_per_second between 0.001 and 1,000,000:
--   * 0.001/s is one message every ~17 minutes; anything slower is a schedule, not a rate, and a
--     smaller rate makes the limiter's waits (1 / rate) grow without bound (1e-20 gave 1e20 s);
--   * 1,000,000/s is three orders of magnitude above any provider's documented limit (WhatsApp
--     Cloud: 1,000/s per number at most), far inside float8's exact range, and keeps the
--     bucket's arithmetic (burst - 0.1 * rate) meaningful; `numeric` alone accepts 1e400, which
--     fails the cast to float8 inside the claim.
-- burst between 1 and 1,000,000: at most a second's worth at the highest rate; a claim never
-- takes more than a batch anyway.
ALTER TABLE herald.channels ADD CONSTRAINT channels_rate_range
    CHECK (rate_per_second >= 0.001 AND rate_per_second <= 1000000) NOT VALID;
ALTER TABLE herald.channels ADD CONSTRAINT channels_burst_range
    CHECK (burst <= 1000000) NOT VALID;

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('broadcasts', 'broadcasts_template_params_strings'),
        ('broadcasts', 'broadcasts_send_at_finite'),
        ('channels', 'channels_rate_range'),
        ('channels', 'channels_burst_range')) AS t(tab, con)
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE herald.%I VALIDATE CONSTRAINT %I', c.tab, c.con);
        EXCEPTION WHEN check_violation THEN
            RAISE WARNING 'herald: rows of herald.% break constraint %; it holds for new writes only until they are fixed (then: ALTER TABLE herald.% VALIDATE CONSTRAINT %)',
                c.tab, c.con, c.tab, c.con;
        END;
    END LOOP;
END
$$;

-- ## The limiter, safe against any stored value
-- Same behaviour as 0004 for sane rows. For rows that predate the checks (or a check still NOT
-- VALID): the rate is clamped to [0.001, 1e6] in numeric before the cast to float8 (1e400 no
-- longer fails the cast), and every wait is clamped to [0, herald.max_wait_seconds()], so a
-- caller converting it to an integer never overflows.
--
-- herald.max_wait_seconds(): the longest wait or provider throttle Herald honours, 3600 s unless
-- ops set the custom parameter `herald.max_throttle_seconds` (for example
-- `ALTER DATABASE herald SET herald.max_throttle_seconds = 7200`); bounded to [1, 86400].
CREATE FUNCTION herald.max_wait_seconds() RETURNS double precision
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_text text := current_setting('herald.max_throttle_seconds', true);
    v      double precision;
BEGIN
    IF v_text IS NULL OR v_text = '' THEN RETURN 3600; END IF;
    BEGIN
        v := v_text::double precision;
    EXCEPTION WHEN others THEN
        RETURN 3600;
    END;
    IF v <> v THEN RETURN 3600; END IF; -- NaN
    RETURN least(86400.0, greatest(1.0, v));
END
$$;

CREATE OR REPLACE FUNCTION herald.take_tokens(p_channel bigint, p_wanted integer,
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
    v_max_wait  double precision := herald.max_wait_seconds();
BEGIN
    SELECT least(greatest(rate_per_second, 0.001), 1000000)::float8 * 0.98, least(burst, 1000000)
    INTO v_rate, v_burst FROM herald.channels WHERE id = p_channel;
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
    -- A bucket throttled beyond the cap (written before this migration, or by hand) is brought
    -- back to the cap; so is a non-finite or NaN token count.
    IF NOT isfinite(v_refreshed) OR v_refreshed > v_now + make_interval(secs => v_max_wait) THEN
        v_refreshed := v_now + make_interval(secs => v_max_wait);
        UPDATE herald.rate_buckets SET refreshed_at = v_refreshed WHERE channel_id = p_channel;
    END IF;
    IF v_tokens IS NULL OR v_tokens <> v_tokens OR v_tokens = 'Infinity'::float8 OR v_tokens = '-Infinity'::float8 THEN
        v_tokens := 0;
    END IF;
    IF v_refreshed > v_now THEN
        -- Throttled by the provider until refreshed_at.
        granted := 0;
        wait_seconds := least(v_max_wait, extract(epoch FROM v_refreshed - v_now)::float8 + 1.0 / v_rate);
        RETURN;
    END IF;
    v_tokens := least(v_capacity, v_tokens + v_rate * extract(epoch FROM v_now - v_refreshed)::float8);
    granted := least(p_wanted::float8, greatest(0.0, floor(v_tokens)))::integer;
    v_tokens := v_tokens - granted;
    UPDATE herald.rate_buckets SET tokens = v_tokens, refreshed_at = v_now WHERE channel_id = p_channel;
    v_need := greatest(1.0, least(p_wanted::float8, v_capacity) / 2.0);
    wait_seconds := least(v_max_wait, greatest(0.0, (v_need - v_tokens) / v_rate));
END
$$;

CREATE OR REPLACE FUNCTION herald.return_tokens(p_channel bigint, p_count integer) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF p_count > 0 THEN
        UPDATE herald.rate_buckets b
        SET tokens = least(greatest(1.0, least(c.burst, 1000000) / 2.0,
                                    least(c.burst, 1000000) - 0.1 * 0.98 * least(greatest(c.rate_per_second, 0.001), 1000000)::float8),
                           b.tokens + p_count)
        FROM herald.channels c WHERE c.id = b.channel_id AND b.channel_id = p_channel;
    END IF;
    RETURN p_count;
END
$$;

-- Pauses a channel for every worker: no tokens until now + p_seconds, p_seconds clamped to
-- [0, herald.max_wait_seconds()] (NaN counts as 0), so a provider's absurd Retry-After pauses a
-- channel for an hour at most, and a later short throttle can end a long one only by the cap.
CREATE OR REPLACE FUNCTION herald.throttle_channel(p_channel bigint, p_seconds double precision) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at)
    VALUES (p_channel, 0, clock_timestamp() + make_interval(secs =>
        CASE WHEN p_seconds IS NULL OR p_seconds <> p_seconds OR p_seconds <= 0 THEN 0
             ELSE least(p_seconds, herald.max_wait_seconds()) END))
    ON CONFLICT (channel_id) DO UPDATE
    SET tokens = 0,
        refreshed_at = least(greatest(herald.rate_buckets.refreshed_at, excluded.refreshed_at),
                             clock_timestamp() + make_interval(secs => herald.max_wait_seconds()));
$$;

-- ## Edits of a running broadcast are validated before they are used
-- The scheduler validates a broadcast once, before expansion. The admin tool may still edit a
-- `sending` or `paused` broadcast (fix a typo, then resume). Such an edit of a content column
-- stamps `definition_changed_at` (and wakes the scheduler); the scheduler validates the broadcast
-- again with the same rules, and either clears the stamp (only if no newer edit came meanwhile)
-- or ends the broadcast `failed` with the reason in `error`. Workers treat a stamped broadcast as
-- not yet usable (they claim none of its jobs while the stamp is set). Herald's own column; the
-- admin tool ignores it.
ALTER TABLE herald.broadcasts ADD COLUMN definition_changed_at timestamptz;

CREATE FUNCTION herald.stamp_definition_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.definition_changed_at := clock_timestamp();
    PERFORM pg_notify('herald_broadcasts', '');
    RETURN NEW;
END
$$;

CREATE TRIGGER broadcasts_definition_change
    BEFORE UPDATE OF channel_id, subject, body, html_body, template_id, template_params ON herald.broadcasts
    FOR EACH ROW
    WHEN (OLD.status IN ('sending', 'paused') AND NEW.status IN ('sending', 'paused')
          AND (OLD.channel_id, OLD.subject, OLD.body, OLD.html_body, OLD.template_id, OLD.template_params)
              IS DISTINCT FROM (NEW.channel_id, NEW.subject, NEW.body, NEW.html_body, NEW.template_id, NEW.template_params))
    EXECUTE FUNCTION herald.stamp_definition_change();

-- The scheduler finds stamped broadcasts by this (few rows, usually none).
CREATE INDEX broadcasts_definition_changed ON herald.broadcasts (id) WHERE definition_changed_at IS NOT NULL;
