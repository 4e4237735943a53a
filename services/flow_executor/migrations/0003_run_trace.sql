-- The correlation id and trace context (Kafka headers) of the input that started each
-- run, so that what the run causes later (a step after a delay, an approved review)
-- carries them too (X4). NULL for runs started before this column existed: their
-- later outputs start a new correlation id, as before.
ALTER TABLE runs ADD COLUMN headers jsonb;
