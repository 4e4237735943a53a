-- Mails are marked sent/failed one by one as the server answers; the hooks that publish
-- their consequences run afterwards and flip `finalized` in the same transaction.
ALTER TABLE mail_queue ADD COLUMN IF NOT EXISTS finalized boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS mail_queue_unfinalized ON mail_queue (id) WHERE NOT finalized;
