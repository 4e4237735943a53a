-- When and from which address a recipient was last asked to confirm (C12, A3): a
-- confirmation link expires after CONFIRM_LINK_TTL_DAYS, and the page of an expired link
-- sends a new mail from the same sender.
ALTER TABLE recipients ADD COLUMN IF NOT EXISTS asked_at timestamptz;
ALTER TABLE recipients ADD COLUMN IF NOT EXISTS asked_from text;
