-- The suppression service's tables (S1–S6). Applied into the `suppression` schema.

-- Suppressions in force: one row per (profile, channel, reason, list); list_key '' is a
-- global suppression.
CREATE TABLE suppressions (
    account_id text        NOT NULL,
    profile_id text        NOT NULL,
    channel    text        NOT NULL,
    reason     text        NOT NULL,
    list_key   text        NOT NULL DEFAULT '',
    since      timestamptz NOT NULL,
    command_id text,
    PRIMARY KEY (account_id, profile_id, channel, reason, list_key)
);

-- Soft bounces in a row per profile (S4), and the profile's latest attributes.
CREATE TABLE suppression_profiles (
    account_id   text        NOT NULL,
    profile_id   text        NOT NULL,
    profile      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    soft_bounces int         NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, profile_id)
);

-- Audit trail of every suppression change.
CREATE TABLE suppression_history (
    id          bigserial   PRIMARY KEY,
    account_id  text        NOT NULL,
    profile_id  text        NOT NULL,
    change      text        NOT NULL,
    channel     text        NOT NULL,
    reason      text        NOT NULL,
    list_id     text,
    source      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppression_history_profile ON suppression_history (account_id, profile_id, id);
