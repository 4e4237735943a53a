-- I1: a recipient's opt-in is keyed by the normal form of the address
-- (shared.domain.identity: NFC, domain in lower case and IDNA form, local part
-- compared case-insensitively); `address` keeps the spelling mails go to, as a flow
-- wrote it. Keys written before were trimmed and lower-cased; here they are put into
-- NFC as well wherever that meets no other row. An international domain stored in
-- Unicode stays so until the recipient is saved under the new key (a new recipient
-- row, asked to confirm: on the protective side).
ALTER TABLE recipients ADD COLUMN IF NOT EXISTS address text;
UPDATE recipients r SET email = normalize(r.email, NFC)
    WHERE r.email <> normalize(r.email, NFC)
      AND NOT EXISTS (SELECT 1 FROM recipients o
                      WHERE o.account_id = r.account_id AND o.email = normalize(r.email, NFC));
UPDATE alert_actions SET recipients = ARRAY(
    SELECT DISTINCT normalize(e, NFC) FROM unnest(recipients) AS e)
    WHERE EXISTS (SELECT 1 FROM unnest(recipients) AS e WHERE e <> normalize(e, NFC));
