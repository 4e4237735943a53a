-- S4: soft bounces in a row per list (list id -> count), next to the count for mail
-- sent without a list.
ALTER TABLE suppression_profiles
    ADD COLUMN list_bounces jsonb NOT NULL DEFAULT '{}'::jsonb;
