-- 0014: a send that Meta refuses because the broadcast's template was paused (132015) or
-- disabled (132016) at Meta pauses the broadcast (contract section 4), instead of failing its
-- remaining messages one by one.
--
-- The worker classifies those answers as retries (WhatsAppCloud.templateUnavailableCodes), so each
-- refused message goes back to its job, due again after a short backoff. This trigger, on the
-- statement that records the outcome (QueueStore.record), then
--   1. does not count the refused attempt: Meta sent nothing, and the message must still be
--      sendable after the template comes back, however many times it was refused; and
--   2. sets the broadcast `paused` with the reason in `error`, once (only from `sending`, so an
--      admin tool's pause, cancel or resume written meanwhile is never overwritten).
-- The claim only takes jobs of `sending` broadcasts, so nothing more is sent until the admin tool
-- sets the broadcast `sending` again (after Meta approves the template again); its messages go
-- out then, where they stopped.
--
-- Why a trigger: the outcome is already written by one statement per batch; doing it there costs
-- nothing on other rows (the WHEN clause is evaluated without calling the function) and keeps the
-- rule in one place, whichever worker code path records the outcome.
SET LOCAL lock_timeout = '5s';

CREATE FUNCTION herald.pause_broadcast_for_template_refusal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.attempts := OLD.attempts;
    UPDATE herald.broadcasts b
    SET status = 'paused',
        error = format('Meta refused the template %s (%s) with error %s: %s; resume the broadcast once Meta approves the template again',
                       coalesce(t.name, '?'), coalesce(t.language, '?'), NEW.error_code, coalesce(NEW.error, 'no reason given'))
    FROM herald.broadcasts same
    LEFT JOIN herald.templates t ON t.id = same.template_id
    WHERE b.id = NEW.broadcast_id AND same.id = b.id AND b.status = 'sending';
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_template_refusal_pauses_broadcast
    BEFORE UPDATE OF error_code ON herald.messages
    FOR EACH ROW
    WHEN (NEW.error_code IN ('132015', '132016') AND NEW.status = 'queued' AND NEW.attempts > OLD.attempts)
    EXECUTE FUNCTION herald.pause_broadcast_for_template_refusal();
