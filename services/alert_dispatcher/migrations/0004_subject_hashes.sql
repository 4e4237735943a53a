-- Keyed hashes of the triggering profile's email and phone (shared/privacy.py): a
-- privacy request that names an address finds the profile's alerts without the
-- dispatcher keeping the address itself (P1).
ALTER TABLE alerts ADD COLUMN subject_hashes text[] NOT NULL DEFAULT '{}';
CREATE INDEX alerts_subject_hashes ON alerts USING gin (subject_hashes);
CREATE INDEX alerts_profile ON alerts (account_id, profile_id);
