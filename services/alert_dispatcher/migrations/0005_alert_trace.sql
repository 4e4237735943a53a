-- The correlation id and trace context (Kafka headers) of the alert request, so that
-- the outcome recorded later, once the alert's mails are answered, carries them too
-- (X4). NULL for alerts requested before this column existed: their outcome starts a
-- new correlation id, as before.
ALTER TABLE alerts ADD COLUMN headers jsonb;
