-- I1: the address and number each profile carries, in their normal form, so that a
-- suppression of an address reaches every profile carrying it. The service writes them
-- (shared.domain.identity) whenever it saves a profile. Rows stored before are filled
-- here as far as SQL can: trimmed, NFC, lower case; '+' and digits for the number. An
-- international domain stays in Unicode until the row is next saved; lookups also try
-- that spelling (rules.stored_spellings).
ALTER TABLE suppression_profiles ADD COLUMN email_key text;
ALTER TABLE suppression_profiles ADD COLUMN phone_key text;
UPDATE suppression_profiles SET
    email_key = nullif(lower(normalize(btrim(profile->>'email'), NFC)), ''),
    phone_key = nullif('+' || regexp_replace(coalesce(profile->>'phone_number', ''), '\D', '', 'g'), '+');
CREATE INDEX suppression_profiles_email_key ON suppression_profiles (account_id, email_key)
    WHERE email_key IS NOT NULL;
CREATE INDEX suppression_profiles_phone_key ON suppression_profiles (account_id, phone_key)
    WHERE phone_key IS NOT NULL;
