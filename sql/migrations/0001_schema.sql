-- 0001: the tables the admin tool writes (../shared/contract.md, section 1).
--
-- Every key is a bigint identity column named id. Checks encode what the contract forbids, so a
-- bad write from the admin tool fails at once with a constraint name instead of surfacing later
-- as a mysterious send failure. Address formats are NOT checked on contacts: a contact with a bad
-- phone number is legal data and becomes a message skipped with `invalid_address`, so reports
-- account for it.

CREATE SCHEMA IF NOT EXISTS herald;

CREATE TABLE herald.channels (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    kind            text NOT NULL CONSTRAINT channels_kind_check CHECK (kind IN ('whatsapp', 'sms', 'email')),
    provider        text NOT NULL CONSTRAINT channels_provider_check
                        CHECK (provider IN ('whatsapp_cloud', 'twilio', 'smtp', 'sandbox')),
    settings        jsonb NOT NULL DEFAULT '{}' CONSTRAINT channels_settings_object CHECK (jsonb_typeof(settings) = 'object'),
    rate_per_second numeric NOT NULL DEFAULT 10 CONSTRAINT channels_rate_positive CHECK (rate_per_second > 0),
    burst           integer NOT NULL DEFAULT 1 CONSTRAINT channels_burst_check CHECK (burst >= 1),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Each provider serves one kind; the sandbox serves any.
    CONSTRAINT channels_provider_kind CHECK (
        provider = 'sandbox'
        OR (provider = 'whatsapp_cloud' AND kind = 'whatsapp')
        OR (provider = 'twilio' AND kind = 'sms')
        OR (provider = 'smtp' AND kind = 'email'))
);

CREATE TABLE herald.contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_name      text,
    last_name       text,
    phone           text,
    email           text,
    attributes      jsonb CONSTRAINT contacts_attributes_object CHECK (attributes IS NULL OR jsonb_typeof(attributes) = 'object'),
    last_inbound_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Incoming WhatsApp messages are matched to contacts by phone number.
CREATE INDEX contacts_phone ON herald.contacts (phone) WHERE phone IS NOT NULL;

CREATE TABLE herald.opt_outs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id   bigint NOT NULL REFERENCES herald.contacts (id) ON DELETE CASCADE,
    channel_kind text NOT NULL CONSTRAINT opt_outs_kind_check CHECK (channel_kind IN ('whatsapp', 'sms', 'email')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Eligibility looks opt-outs up by (contact, kind), at expansion and again before each send.
CREATE INDEX opt_outs_contact_kind ON herald.opt_outs (contact_id, channel_kind);

CREATE TABLE herald.groups (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE herald.group_members (
    group_id   bigint NOT NULL REFERENCES herald.groups (id) ON DELETE CASCADE,
    contact_id bigint NOT NULL REFERENCES herald.contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, contact_id)
);
-- For ON DELETE CASCADE from contacts and "which groups is this contact in".
CREATE INDEX group_members_contact ON herald.group_members (contact_id);

CREATE TABLE herald.templates (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id bigint NOT NULL REFERENCES herald.channels (id) ON DELETE CASCADE,
    name       text NOT NULL CONSTRAINT templates_name_check CHECK (name ~ '^[a-z0-9_]+$'),
    language   text NOT NULL CONSTRAINT templates_language_check CHECK (language ~ '^[a-z]{2,3}(_[A-Za-z0-9]{2,8})?$'),
    body       text NOT NULL,
    status     text NOT NULL DEFAULT 'pending' CONSTRAINT templates_status_check CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel_id, name, language)
);

CREATE TABLE herald.broadcasts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    channel_id      bigint NOT NULL REFERENCES herald.channels (id),
    subject         text,
    body            text,
    html_body       text,
    template_id     bigint REFERENCES herald.templates (id),
    template_params jsonb CONSTRAINT broadcasts_template_params_array
                        CHECK (template_params IS NULL OR jsonb_typeof(template_params) = 'array'),
    send_at         timestamptz,
    status          text NOT NULL DEFAULT 'draft' CONSTRAINT broadcasts_status_check
                        CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'completed', 'failed')),
    -- Set by Herald.
    error           text,
    started_at      timestamptz,
    finished_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's queries: due scheduled broadcasts, and the live ones (sending, paused, cancelled
-- with work left). Few rows match, so a partial index keeps these lookups tiny.
CREATE INDEX broadcasts_active ON herald.broadcasts (status, send_at)
    WHERE status IN ('scheduled', 'sending', 'paused');

CREATE TABLE herald.broadcast_groups (
    broadcast_id bigint NOT NULL REFERENCES herald.broadcasts (id) ON DELETE CASCADE,
    group_id     bigint NOT NULL REFERENCES herald.groups (id) ON DELETE CASCADE,
    PRIMARY KEY (broadcast_id, group_id)
);

CREATE TABLE herald.broadcast_contacts (
    broadcast_id bigint NOT NULL REFERENCES herald.broadcasts (id) ON DELETE CASCADE,
    contact_id   bigint NOT NULL REFERENCES herald.contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (broadcast_id, contact_id)
);
