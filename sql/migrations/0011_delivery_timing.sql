-- 0011: delivery timing: recipients' time zones, local send times and send windows (the
-- contract's "Delivery timing").
--
-- Contract columns:
--   contacts.time_zone       IANA name (`Africa/Lagos`); null = the broadcast's time_zone
--   broadcasts.send_window   {"from": "HH:MM", "to": "HH:MM", "days": ["mon", …]} or null
--   broadcasts.local_send_at send_at's wall-clock time in the broadcast's zone is each recipient's
--                            local due time
--   broadcasts.time_zone     IANA name; null = UTC
--
-- Time zones are resolved by PostgreSQL (`AT TIME ZONE`), from the system's IANA database on
-- Debian builds (`--with-system-tzdata`, hence the `tzdata` package in scripts/install-deps and
-- the Dockerfile). Zone NAMES are not checked at write time: the set of known names changes with
-- tzdata updates, so a CHECK could not be immutable; the scheduler resolves them instead (an
-- unknown contact zone falls back to the broadcast's zone with a warning in `error`; an unknown
-- broadcast zone fails validation). The send window's SHAPE is checked here.
--
-- Window semantics (herald.next_send_opening): a window is open on local day D from D+from to
-- D+to; when `to` <= `from` it crosses midnight and closes at D+1+to. `days` names the day on
-- which the window OPENS: a 22:00-06:00 window with days ["fri"] runs Friday 22:00 to Saturday
-- 06:00. Local times that do not exist (the spring-forward gap) or exist twice (fall-back) are
-- mapped to instants by PostgreSQL's own rule for `timestamp AT TIME ZONE`.

-- ## Shape of send_window
CREATE FUNCTION herald.send_window_valid(w jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN w IS NULL THEN true
        WHEN jsonb_typeof(w) <> 'object' THEN false
        WHEN EXISTS (SELECT 1 FROM jsonb_object_keys(w) k WHERE k NOT IN ('from', 'to', 'days')) THEN false
        WHEN jsonb_typeof(w -> 'from') IS DISTINCT FROM 'string'
          OR jsonb_typeof(w -> 'to') IS DISTINCT FROM 'string' THEN false
        WHEN w ->> 'from' !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
          OR w ->> 'to' !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN false
        -- An empty window would never open; a full day is "no window" (null).
        WHEN w ->> 'from' = w ->> 'to' THEN false
        WHEN NOT w ? 'days' OR jsonb_typeof(w -> 'days') = 'null' THEN true
        WHEN jsonb_typeof(w -> 'days') <> 'array' OR jsonb_array_length(w -> 'days') = 0 THEN false
        ELSE NOT EXISTS (
            SELECT 1 FROM jsonb_array_elements(w -> 'days') d
            WHERE jsonb_typeof(d) <> 'string'
               OR d #>> '{}' NOT IN ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'))
    END
$$;

ALTER TABLE herald.contacts ADD COLUMN time_zone text;

ALTER TABLE herald.broadcasts
    ADD COLUMN send_window jsonb CONSTRAINT broadcasts_send_window_shape CHECK (herald.send_window_valid(send_window)),
    ADD COLUMN local_send_at boolean NOT NULL DEFAULT false,
    ADD COLUMN time_zone text,
    -- Herald's own (not in the contract): when the scheduler should look at the broadcast. Equal
    -- to send_at, except with local_send_at, where the first recipient's due instant may come
    -- earlier than send_at itself; see herald.broadcast_starts_at.
    ADD COLUMN starts_at timestamptz;

-- The recipient's zone for each queued job of a broadcast with a send window (null otherwise), so
-- the claim can re-check the window without joining contacts. Herald's own.
ALTER TABLE herald.jobs ADD COLUMN time_zone text;

-- ## Zone names
-- True when PostgreSQL knows `p_zone` as a zone name. POSIX offset strings ('+05:30', 'UTC+3',
-- whose sign is inverted) are refused: the contract speaks of IANA names only.
CREATE FUNCTION herald.time_zone_known(p_zone text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    -- One component without a sign (UTC, EST5EDT, GMT+0 aside), or Area/Location[/…].
    IF p_zone IS NULL OR NOT (p_zone ~ '^([A-Za-z][A-Za-z0-9_]*|GMT[+-]0)$'
                              OR p_zone ~ '^[A-Za-z][A-Za-z0-9_-]*(/[A-Za-z0-9_+-]+)+$') THEN
        RETURN false;
    END IF;
    PERFORM now() AT TIME ZONE p_zone;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value OR feature_not_supported THEN
    RETURN false;
END
$$;

-- ## Windows
-- The openings of p_window for a recipient in p_zone (null = UTC; must be a known zone) that are
-- still open at or after p_at, in the local days from yesterday (a window crossing midnight may
-- still be open) to p_days ahead: (opens, closes) instants, the window open in [opens, closes).
-- A window whose times fall into a spring-forward gap so that it would close before it opens is
-- empty that day.
CREATE FUNCTION herald.send_window_openings(p_window jsonb, p_zone text, p_at timestamptz, p_days integer)
RETURNS TABLE (opens timestamptz, closes timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT w.opens, w.closes
    FROM (SELECT coalesce(p_zone, 'UTC') AS zone,
                 (p_window ->> 'from')::time AS t_from,
                 (p_window ->> 'to')::time AS t_to) z
    CROSS JOIN generate_series(-1, p_days) AS k(k)
    CROSS JOIN LATERAL (SELECT (p_at AT TIME ZONE z.zone)::date + k.k AS day) d
    CROSS JOIN LATERAL (
        SELECT (d.day + z.t_from) AT TIME ZONE z.zone AS opens,
               ((d.day + CASE WHEN z.t_to <= z.t_from THEN 1 ELSE 0 END) + z.t_to) AT TIME ZONE z.zone AS closes) w
    WHERE w.closes > p_at AND w.closes > w.opens
      AND (coalesce(jsonb_typeof(p_window -> 'days'), 'null') = 'null'
           OR p_window -> 'days' ? (ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])[extract(isodow FROM d.day)::int])
    ORDER BY w.opens
$$;

-- The first instant >= p_at at which a recipient in p_zone may be sent a message under p_window:
-- p_at itself while the window is open (or when there is no window), else the window's next
-- opening (eight days cover any day list).
CREATE FUNCTION herald.next_send_opening(p_window jsonb, p_zone text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_window IS NULL OR p_at IS NULL THEN p_at
                ELSE (SELECT min(greatest(o.opens, p_at)) FROM herald.send_window_openings(p_window, p_zone, p_at, 8) o) END
$$;

-- True when p_window is open at p_at for a recipient in p_zone.
CREATE FUNCTION herald.send_window_open(p_window jsonb, p_zone text, p_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT herald.next_send_opening(p_window, p_zone, p_at) = p_at
$$;

-- For the workers' claim: the first instant >= p_at at which a job of broadcast p_broadcast for a
-- recipient in p_zone (jobs.time_zone, set at expansion only when the broadcast has a send
-- window) may be sent. p_at when there is no window. The window is read from the broadcast at
-- every call, so an edit of send_window applies to messages not yet sent.
CREATE FUNCTION herald.job_send_opening(p_broadcast bigint, p_zone text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_zone IS NULL THEN p_at
                ELSE coalesce(herald.next_send_opening(
                         (SELECT send_window FROM herald.broadcasts WHERE id = p_broadcast), p_zone, p_at), p_at) END
$$;

-- ## Local send times
-- The instant at which a recipient in p_zone is due: send_at's wall-clock time in the broadcast's
-- zone, read in p_zone (local_send_at), else send_at. Zones must be known.
CREATE FUNCTION herald.local_due_at(p_send_at timestamptz, p_broadcast_zone text, p_zone text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_send_at AT TIME ZONE coalesce(p_broadcast_zone, 'UTC')) AT TIME ZONE coalesce(p_zone, 'UTC')
$$;

-- When the scheduler should start a broadcast. Without local_send_at: send_at. With it, the first
-- possible recipient instant: send_at's wall clock read in the most advanced zone on Earth (UTC+14,
-- Pacific/Kiritimati), a bound that needs no scan of the audience; the scheduler then narrows it
-- to the earliest zone actually present in the audience (SchedulerStore.narrowStart) before it
-- validates and expands. With an unknown broadcast zone, 26 hours before send_at (every offset
-- lies within -12..+14 hours), so validation runs early enough to report the bad zone.
CREATE FUNCTION herald.broadcast_starts_at(p_send_at timestamptz, p_local boolean, p_zone text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_send_at IS NULL OR NOT p_local THEN p_send_at
        WHEN p_zone IS NULL OR herald.time_zone_known(p_zone) THEN herald.local_due_at(p_send_at, p_zone, 'Pacific/Kiritimati')
        ELSE p_send_at - interval '26 hours'
    END
$$;

CREATE FUNCTION herald.broadcasts_set_starts_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.send_at IS DISTINCT FROM OLD.send_at
       OR NEW.local_send_at IS DISTINCT FROM OLD.local_send_at OR NEW.time_zone IS DISTINCT FROM OLD.time_zone THEN
        NEW.starts_at := herald.broadcast_starts_at(NEW.send_at, NEW.local_send_at, NEW.time_zone);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER broadcasts_starts_at
    BEFORE INSERT OR UPDATE OF send_at, local_send_at, time_zone ON herald.broadcasts
    FOR EACH ROW EXECUTE FUNCTION herald.broadcasts_set_starts_at();

UPDATE herald.broadcasts SET starts_at = send_at WHERE send_at IS NOT NULL;

-- The scheduler's due query reads starts_at now.
CREATE INDEX broadcasts_due ON herald.broadcasts (starts_at) WHERE status = 'scheduled';

-- The scheduler wakes on changes of these too (0002's trigger listed status and send_at).
DROP TRIGGER broadcasts_notify ON herald.broadcasts;
CREATE TRIGGER broadcasts_notify
    AFTER INSERT OR UPDATE OF status, send_at, local_send_at, time_zone OR DELETE ON herald.broadcasts
    FOR EACH STATEMENT EXECUTE FUNCTION herald.notify_broadcasts();
