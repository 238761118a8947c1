-- Seeds one broadcast in `sending` with :n queued messages and jobs on channel :'channel'
-- (what the scheduler leaves behind), for the worker benchmark. psql variables: n, channel.
INSERT INTO herald.contacts (first_name, last_name, phone, email, attributes, last_inbound_at)
SELECT 'Adébáyọ̀' || i, 'Ọlá', '+23480' || lpad(i::text, 8, '0'), 'c' || i || '@example.com',
       jsonb_build_object('order', 'A-' || i), now()
FROM generate_series(1, :n) AS i;
INSERT INTO herald.templates (channel_id, name, language, body, status)
SELECT id, 'order_update', 'en_US', 'Hello {{1}}, your order {{2}} is on its way.', 'approved'
FROM herald.channels WHERE name = :'channel';
INSERT INTO herald.broadcasts (name, channel_id, body, template_id, template_params, status, started_at, expanded_at)
SELECT 'bench', c.id, 'Hello {{ first_name }}, your order {{ attributes.order }} is on its way.',
       CASE WHEN c.kind = 'whatsapp' THEN t.id END,
       CASE WHEN c.kind = 'whatsapp' THEN '["{{ first_name | default: \"there\" }}", "{{ attributes.order }}"]'::jsonb END,
       'sending', now(), now()
FROM herald.channels c LEFT JOIN herald.templates t ON t.channel_id = c.id WHERE c.name = :'channel';
WITH m AS (
    INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address)
    SELECT b.id, ct.id, b.channel_id, ct.phone
    FROM herald.broadcasts b, herald.contacts ct
    WHERE b.name = 'bench' AND b.status = 'sending'
    RETURNING id, broadcast_id, channel_id
)
INSERT INTO herald.jobs (message_id, broadcast_id, channel_id) SELECT id, broadcast_id, channel_id FROM m;
VACUUM ANALYZE herald.jobs;
VACUUM ANALYZE herald.messages;
VACUUM ANALYZE herald.contacts;
-- The seeding's dirty pages are written out now, not during the measured run.
CHECKPOINT;
