-- Per-recipient delivery state, the account sending limit (A8) and mails cancelled at
-- send time because their recipient is no longer confirmed (A5).

ALTER TABLE mail_queue DROP CONSTRAINT IF EXISTS mail_queue_status_check;
ALTER TABLE mail_queue ADD CONSTRAINT mail_queue_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled'));

ALTER TABLE alerts ADD COLUMN flow_version int;

-- One row per (alert, recipient) named in the request: `pending` while its mail is
-- queued, then `sent`, `failed` (5xx, with the answer) or `skipped` (not confirmed).
ALTER TABLE alert_deliveries ALTER COLUMN mail_id DROP NOT NULL;
ALTER TABLE alert_deliveries ADD COLUMN deferred_until timestamptz;
ALTER TABLE alert_deliveries ADD COLUMN completed_at timestamptz;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'skipped'));
CREATE INDEX alert_deliveries_email ON alert_deliveries (email);

CREATE TABLE send_windows (
    account_id   text        NOT NULL,
    window_start timestamptz NOT NULL,
    sent         int         NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, window_start)
);

CREATE TABLE account_limits (
    account_id                text        PRIMARY KEY,
    alert_send_limit_per_hour int         NOT NULL CHECK (alert_send_limit_per_hour >= 0),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
