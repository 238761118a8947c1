-- A contact deleted after its broadcast was expanded (an erasure request, a clean-up of the
-- address book) is never messaged: the claim sees the contact gone and the message ends
-- `skipped` with `contact_deleted` (its opt-outs went with it, so nothing else could stop it).
-- The check is widened: added NOT VALID (no scan under the ACCESS EXCLUSIVE lock), then
-- validated under a lock that lets reads and writes go on; every existing value is in the new set.
SET LOCAL lock_timeout = '5s';

ALTER TABLE herald.messages DROP CONSTRAINT messages_skip_reason_check;
ALTER TABLE herald.messages ADD CONSTRAINT messages_skip_reason_check
    CHECK (skip_reason IN ('opted_out', 'invalid_address', 'outside_whatsapp_window', 'contact_deleted')) NOT VALID;
ALTER TABLE herald.messages VALIDATE CONSTRAINT messages_skip_reason_check;
