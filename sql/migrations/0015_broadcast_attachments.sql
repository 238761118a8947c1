-- 0015: email attachments (contract "Media"). The scheduler fetches each item of an email
-- broadcast's `media` once, when it starts the broadcast, and keeps the bytes here; workers load
-- them once per broadcast. Herald's own table: the admin tool never reads or writes it.
--
-- The bytes are needed only while the broadcast can still send: when it reaches an end state
-- (`completed`, `failed`, `cancelled`) a trigger drops them, and deleting a broadcast drops them
-- with it (ON DELETE CASCADE).
SET LOCAL lock_timeout = '5s';

CREATE TABLE herald.broadcast_attachments (
    broadcast_id  bigint NOT NULL REFERENCES herald.broadcasts (id) ON DELETE CASCADE,
    -- The item's index in broadcasts.media.
    position      integer NOT NULL CHECK (position >= 0),
    -- Where it was fetched from: an edit of the broadcast's media is checked against it.
    url           text NOT NULL,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    bytes         bytea NOT NULL,
    fetched_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (broadcast_id, position)
);

CREATE FUNCTION herald.drop_finished_attachments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM herald.broadcast_attachments WHERE broadcast_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER broadcast_attachments_end AFTER UPDATE OF status ON herald.broadcasts
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION herald.drop_finished_attachments();

