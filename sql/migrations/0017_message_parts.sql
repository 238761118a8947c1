-- Messages sent as several provider requests (issue 18): a WhatsApp audio with a body goes as
-- the audio, then the body as a text message. Each claim sends one part; the outcome statement
-- that records an accepted part which is not the last appends the provider's id for it here, in
-- the same statement that hands the job back, so:
--   * the next claim (by any worker) sends the next part, never an accepted one again: the
--     number of ids is the number of parts already sent;
--   * receipts for those earlier parts (Meta echoes Herald's message id in each) still match
--     their message, and only a `failed` one changes it (the message follows its last part's
--     receipts: the last part is the one whose acceptance makes the message `sent`).
-- NULL for every message sent in one request. A nullable column without default: no rewrite.
ALTER TABLE herald.messages ADD COLUMN part_provider_message_ids text[];

COMMENT ON COLUMN herald.messages.part_provider_message_ids IS
    'Provider ids of the parts of a multi-request message accepted before its last part (internal; see migration 0017).';
