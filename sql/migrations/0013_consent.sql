-- 0013: the consent loop (docs/consent.md). Opt-outs Herald writes itself (keywords, provider
-- answers, unsubscribe links) and the WhatsApp messaging tier (`daily_limit`).
--
-- Every writer of opt_outs here is idempotent: a contact already opted out of a kind (by anyone)
-- gets no second row, and the partial unique index below closes the race of two writers at once.
-- Rows the admin tool wrote (source NULL) are never deleted by Herald.
SET LOCAL lock_timeout = '5s';

-- At most one Herald-written opt-out per contact and kind (ON CONFLICT target of the writers).
CREATE UNIQUE INDEX opt_outs_herald_once ON herald.opt_outs (contact_id, channel_kind) WHERE source IS NOT NULL;

-- Inserts a Herald opt-out unless the contact already has one of that kind; returns 1 or 0.
CREATE FUNCTION herald.insert_opt_out(p_contact_id bigint, p_kind text, p_source text, p_broadcast_id bigint)
RETURNS integer LANGUAGE sql AS $$
    WITH ins AS (
        INSERT INTO herald.opt_outs (contact_id, channel_kind, source, broadcast_id)
        SELECT p_contact_id, p_kind, p_source, p_broadcast_id
        WHERE NOT EXISTS (SELECT 1 FROM herald.opt_outs o WHERE o.contact_id = p_contact_id AND o.channel_kind = p_kind)
        ON CONFLICT (contact_id, channel_kind) WHERE source IS NOT NULL DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM ins
$$;

-- A keyword a person sent from `p_phone` (E.164 as contacts.phone stores it) on a channel of kind
-- `p_kind`: 'opt_out' inserts an opt-out (source 'keyword') for every contact with that phone;
-- 'opt_in' deletes their keyword opt-outs of that kind, and only those (never the admin tool's, a
-- provider's or a link's). Returns the number of opt-out rows inserted or deleted.
CREATE FUNCTION herald.record_keyword(p_phone text, p_kind text, p_keyword_action text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    changed integer := 0;
BEGIN
    IF p_keyword_action = 'opt_out' THEN
        SELECT coalesce(sum(herald.insert_opt_out(c.id, p_kind, 'keyword', NULL)), 0)::integer INTO changed
        FROM herald.contacts c WHERE c.phone = p_phone;
    ELSIF p_keyword_action = 'opt_in' THEN
        DELETE FROM herald.opt_outs o USING herald.contacts c
        WHERE c.phone = p_phone AND o.contact_id = c.id AND o.channel_kind = p_kind AND o.source = 'keyword';
        GET DIAGNOSTICS changed = ROW_COUNT;
    ELSE
        RAISE EXCEPTION 'record_keyword: unknown action %', p_keyword_action;
    END IF;
    RETURN changed;
END
$$;

-- The provider's "this person opted out" codes, per channel kind: Twilio 21610 (the recipient
-- replied STOP at the carrier), Meta 131050 (the user stopped marketing messages).
CREATE FUNCTION herald.is_provider_opt_out(p_kind text, p_error_code text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (p_kind = 'sms' AND p_error_code = '21610') OR (p_kind = 'whatsapp' AND p_error_code = '131050')
$$;

-- Called by the statements that record failures (the worker's record, the receipt applier) with
-- the messages they have just failed and their error codes: inserts an opt-out (source
-- 'provider', the message's broadcast) for each whose code is its kind's opt-out code. Reads only
-- columns that never change (contact, broadcast, channel), so it sees the same rows whether or not
-- the calling statement's own updates are visible. Returns the number inserted.
CREATE FUNCTION herald.record_provider_opt_outs(p_message_ids bigint[], p_error_codes text[])
RETURNS integer LANGUAGE sql AS $$
    SELECT coalesce(sum(herald.insert_opt_out(m.contact_id, ch.kind, 'provider', m.broadcast_id)), 0)::integer
    FROM unnest(p_message_ids, p_error_codes) AS f(message_id, error_code)
    JOIN herald.messages m ON m.id = f.message_id
    JOIN herald.channels ch ON ch.id = m.channel_id
    WHERE herald.is_provider_opt_out(ch.kind, f.error_code)
$$;

-- The unsubscribe link of message `p_message_id` was used: opts its contact out of its channel's
-- kind (source 'unsubscribe_link', its broadcast). NULL when the message does not exist, else the
-- number inserted (0: already opted out).
CREATE FUNCTION herald.record_link_opt_out(p_message_id bigint) RETURNS integer LANGUAGE sql AS $$
    SELECT herald.insert_opt_out(m.contact_id, ch.kind, 'unsubscribe_link', m.broadcast_id)
    FROM herald.messages m JOIN herald.channels ch ON ch.id = m.channel_id
    WHERE m.id = p_message_id
$$;

-- ---------------------------------------------------------------------------------------------
-- Messaging tier: at most `daily_limit` distinct recipients per channel in any rolling 24 hours.
--
-- tier_recipients holds, per channel, each recipient (address) with the last time a claim let a
-- message to it go. A recipient counts against the limit while that time is within 24 hours, so
-- a second message to someone already counted is free. A slot is taken at claim time (before the
-- send), so a failed send still counts: the limit is never exceeded, at worst under-used.
CREATE TABLE herald.tier_recipients (
    channel_id bigint NOT NULL,
    address    text NOT NULL,
    sent_at    timestamptz NOT NULL,
    PRIMARY KEY (channel_id, address)
);
CREATE INDEX tier_recipients_window ON herald.tier_recipients (channel_id, sent_at);

-- One row per limited channel, locked by each claim that admits through it: claims of one tier
-- channel run one after another (across all workers), so two never give out the same slot.
CREATE TABLE herald.tier_channels (
    channel_id bigint PRIMARY KEY
);

-- Jobs a claim put off until the window frees (their run_at then). Only for counting them
-- (`herald report`, metrics) and for waking them when the limit changes; a row whose job has
-- gone (cancelled, sent) is ignored and removed by the next admit of the channel.
CREATE TABLE herald.tier_waits (
    message_id bigint PRIMARY KEY,
    channel_id bigint NOT NULL
);
CREATE INDEX tier_waits_channel ON herald.tier_waits (channel_id);

-- The claim's tier step: of the jobs `p_message_ids` (claimed rows of one broadcast, locked by the
-- caller), returns those that may be sent now. Without `daily_limit`, or for a broadcast without a
-- template, all of them, at the cost of one or two lookups.
-- With it: messages to recipients already counted in the window, then new recipients in message
-- id order while slots are left; the rest get run_at = when the oldest counted recipient leaves
-- the window, so no claim looks at them again before then (no spin).
CREATE FUNCTION herald.tier_admit(p_channel_id bigint, p_message_ids bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    lim integer;
    used integer;
    frees timestamptz;
BEGIN
    SELECT CASE WHEN jsonb_typeof(settings -> 'daily_limit') = 'number' THEN (settings ->> 'daily_limit')::numeric::integer END
    INTO lim FROM herald.channels WHERE id = p_channel_id;
    -- Only business-initiated messages (templates) count: a claim holds one broadcast's jobs, and
    -- free-form text goes only to people who wrote in the last 24 hours.
    IF lim IS NULL OR cardinality(p_message_ids) = 0
       OR EXISTS (SELECT 1 FROM herald.messages m JOIN herald.broadcasts b ON b.id = m.broadcast_id
                  WHERE m.id = p_message_ids[1] AND b.template_id IS NULL) THEN
        RETURN QUERY SELECT unnest(p_message_ids);
        RETURN;
    END IF;
    INSERT INTO herald.tier_channels VALUES (p_channel_id) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM herald.tier_channels WHERE channel_id = p_channel_id FOR UPDATE;

    DELETE FROM herald.tier_recipients WHERE channel_id = p_channel_id AND sent_at <= now() - interval '24 hours';
    SELECT count(*) INTO used FROM herald.tier_recipients WHERE channel_id = p_channel_id;

    CREATE TEMP TABLE IF NOT EXISTS tier_candidates (message_id bigint, address text, admit boolean)
        ON COMMIT DROP;
    TRUNCATE tier_candidates;
    INSERT INTO tier_candidates
    SELECT m.id, coalesce(m.address, ''), EXISTS (
               SELECT 1 FROM herald.tier_recipients r WHERE r.channel_id = p_channel_id AND r.address = coalesce(m.address, ''))
    FROM herald.messages m WHERE m.id = ANY (p_message_ids);

    -- New recipients, first message first, while slots are left.
    UPDATE tier_candidates t SET admit = true
    FROM (SELECT address FROM tier_candidates WHERE NOT admit GROUP BY address
          ORDER BY min(message_id) LIMIT greatest(lim - used, 0)) n
    WHERE t.address = n.address;

    INSERT INTO herald.tier_recipients (channel_id, address, sent_at)
    SELECT DISTINCT p_channel_id, address, now() FROM tier_candidates WHERE admit
    ON CONFLICT (channel_id, address) DO UPDATE SET sent_at = excluded.sent_at;

    IF EXISTS (SELECT 1 FROM tier_candidates WHERE NOT admit) THEN
        SELECT min(sent_at) + interval '24 hours' INTO frees FROM herald.tier_recipients WHERE channel_id = p_channel_id;
        UPDATE herald.jobs j SET run_at = greatest(frees, now()), lease_owner = NULL
        FROM tier_candidates t WHERE j.message_id = t.message_id AND NOT t.admit;
        INSERT INTO herald.tier_waits (message_id, channel_id)
        SELECT message_id, p_channel_id FROM tier_candidates WHERE NOT admit
        ON CONFLICT (message_id) DO NOTHING;
    END IF;
    DELETE FROM herald.tier_waits w
    WHERE w.channel_id = p_channel_id
      AND (w.message_id IN (SELECT message_id FROM tier_candidates WHERE admit)
           OR NOT EXISTS (SELECT 1 FROM herald.jobs j WHERE j.message_id = w.message_id));
    RETURN QUERY SELECT message_id FROM tier_candidates WHERE admit;
END
$$;

-- A changed (or removed) daily_limit applies at once: the jobs put off for the tier are due now,
-- and the next claim admits them under the new limit. SECURITY DEFINER: the admin tool changes
-- the setting, and its role may not touch herald.jobs itself.
CREATE FUNCTION herald.tier_limit_changed() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE herald.jobs j SET run_at = now()
    FROM herald.tier_waits w
    WHERE w.channel_id = NEW.id AND j.message_id = w.message_id AND j.lease_owner IS NULL AND j.run_at > now();
    RETURN NULL;
END
$$;
CREATE TRIGGER channels_tier_limit_changed AFTER UPDATE OF settings ON herald.channels
    FOR EACH ROW WHEN ((OLD.settings -> 'daily_limit') IS DISTINCT FROM (NEW.settings -> 'daily_limit'))
    EXECUTE FUNCTION herald.tier_limit_changed();

-- Messages waiting for their channel's tier window, per broadcast (`herald report`, metrics).
CREATE FUNCTION herald.tier_waiting() RETURNS TABLE (broadcast_id bigint, channel_id bigint, waiting bigint)
LANGUAGE sql STABLE AS $$
    SELECT j.broadcast_id, j.channel_id, count(*)
    FROM herald.tier_waits w JOIN herald.jobs j ON j.message_id = w.message_id
    WHERE j.run_at > now() AND j.lease_owner IS NULL
    GROUP BY j.broadcast_id, j.channel_id
$$;
