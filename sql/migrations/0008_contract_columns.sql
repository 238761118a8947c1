-- 0008: the contract's newer columns for templates, broadcasts and opt-outs (docs/contract.md),
-- and a CHECK on messages.failure_kind, so that every typed state of Herald's Swift code
-- (HeraldCore's Domain.swift) is spelled the same way in the schema (DomainSpellingTests).
--
-- The admin tool may write these columns from now on. What Herald does not send yet (media,
-- template headers and buttons) fails validation with a named error instead of being ignored.
SET LOCAL lock_timeout = '5s';

ALTER TABLE herald.templates
    DROP CONSTRAINT templates_status_check,
    ADD CONSTRAINT templates_status_check
        CHECK (status IN ('pending', 'approved', 'rejected', 'paused', 'disabled')),
    ADD COLUMN category text CONSTRAINT templates_category_check
        CHECK (category IN ('marketing', 'utility', 'authentication')),
    ADD COLUMN header_format text NOT NULL DEFAULT 'none' CONSTRAINT templates_header_format_check
        CHECK (header_format IN ('none', 'text', 'image', 'video', 'document')),
    ADD COLUMN header_text text,
    ADD COLUMN buttons jsonb CONSTRAINT templates_buttons_array
        CHECK (buttons IS NULL OR jsonb_typeof(buttons) = 'array'),
    -- Set by Herald when it keeps templates in step with Meta.
    ADD COLUMN meta_template_id text,
    ADD COLUMN status_reason text;

ALTER TABLE herald.broadcasts
    ADD COLUMN template_header_params jsonb CONSTRAINT broadcasts_template_header_params_array
        CHECK (template_header_params IS NULL OR jsonb_typeof(template_header_params) = 'array'),
    ADD COLUMN template_button_params jsonb CONSTRAINT broadcasts_template_button_params_array
        CHECK (template_button_params IS NULL OR jsonb_typeof(template_button_params) = 'array'),
    ADD COLUMN media jsonb CONSTRAINT broadcasts_media_array
        CHECK (media IS NULL OR jsonb_typeof(media) = 'array');

-- source: NULL when the admin tool wrote the row; Herald writes the others.
ALTER TABLE herald.opt_outs
    ADD COLUMN source text CONSTRAINT opt_outs_source_check
        CHECK (source IN ('keyword', 'provider', 'unsubscribe_link')),
    ADD COLUMN broadcast_id bigint;

-- NOT VALID first, so adding it does not scan a large history under the lock; VALIDATE then
-- scans with a lock that lets workers keep writing.
ALTER TABLE herald.messages ADD CONSTRAINT messages_failure_kind_check
    CHECK (failure_kind IN ('not_sent', 'ambiguous')) NOT VALID;
ALTER TABLE herald.messages VALIDATE CONSTRAINT messages_failure_kind_check;
