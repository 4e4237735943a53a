-- I1: every spelling of an address is looked up by one normal form (NFC, domain in
-- lower-case punycode, local part case-insensitive), computed by the service with
-- email-validator (shared/domain/identity.py) whenever a row is written. Rows written
-- before this column existed get lower(address), the normal form of every address with
-- an ASCII domain in NFC; they take the full form the next time they are written.
ALTER TABLE consent_state ADD COLUMN email_key text;
UPDATE consent_state SET email_key = lower(btrim(coalesce(email, profile->>'email')))
    WHERE coalesce(email, profile->>'email') IS NOT NULL;
CREATE INDEX consent_state_email_key ON consent_state (account_id, email_key)
    WHERE email_key IS NOT NULL;

ALTER TABLE confirmations ADD COLUMN email_key text;
UPDATE confirmations SET email_key = lower(btrim(email)) WHERE email IS NOT NULL;
CREATE INDEX confirmations_email_key ON confirmations (account_id, email_key)
    WHERE email_key IS NOT NULL;
