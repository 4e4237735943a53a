-- C17: the consent receipt in force per consent slot (`email`, `list:<id>`,
-- `scope:<scope>`, `sms_marketing`, `sms_transactional`, `push`), from the `receipt_id`
-- of `consent-changes`: {slot: {"receipt_id": id or null, "at": the change's occurred_at}}.
-- Each slot keeps the newest change's receipt, so a late older change replaces nothing.
ALTER TABLE reachability ADD COLUMN receipts jsonb NOT NULL DEFAULT '{}'::jsonb;
