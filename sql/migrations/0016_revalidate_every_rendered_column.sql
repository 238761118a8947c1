-- 0016: an edit of a running broadcast is re-validated whichever column it touches.
--
-- 0012's trigger stamped `definition_changed_at` only for channel_id, subject, body, html_body,
-- template_id and template_params. The workers also render from `media`,
-- `template_header_params` and `template_button_params`, and the scheduler's validation reads
-- those and the delivery-timing columns (`time_zone` must be a known zone; `send_window` is read
-- by every claim). An edit of any of them on a `sending` or `paused` broadcast went straight to
-- the workers unchecked: an http media URL, a fourth media item on WhatsApp or an unknown tag in
-- a header parameter was sent (or refused by the provider message by message) instead of failing
-- the broadcast once, with the rule named.
--
-- The trigger now watches every broadcast column that the workers render from (content, template,
-- its parameters, media) or the scheduler's validation reads (those, plus the delivery-timing
-- columns `send_window`, `local_send_at` and `time_zone`). `name` and `send_at` matter only
-- before a broadcast starts; `status` is the life cycle, not the definition. The stamping
-- function (0012's herald.stamp_definition_change) is unchanged.
SET LOCAL lock_timeout = '5s';

DROP TRIGGER broadcasts_definition_change ON herald.broadcasts;

CREATE TRIGGER broadcasts_definition_change
    BEFORE UPDATE OF channel_id, subject, body, html_body, template_id, template_params,
                     template_header_params, template_button_params, media,
                     send_window, local_send_at, time_zone
    ON herald.broadcasts
    FOR EACH ROW
    WHEN (OLD.status IN ('sending', 'paused') AND NEW.status IN ('sending', 'paused')
          AND (OLD.channel_id, OLD.subject, OLD.body, OLD.html_body, OLD.template_id, OLD.template_params,
               OLD.template_header_params, OLD.template_button_params, OLD.media,
               OLD.send_window, OLD.local_send_at, OLD.time_zone)
              IS DISTINCT FROM
              (NEW.channel_id, NEW.subject, NEW.body, NEW.html_body, NEW.template_id, NEW.template_params,
               NEW.template_header_params, NEW.template_button_params, NEW.media,
               NEW.send_window, NEW.local_send_at, NEW.time_zone))
    EXECUTE FUNCTION herald.stamp_definition_change();
