-- The consent service's tables (C1–C14). Applied into the `consent` schema.

-- Current consent per profile: the domain state as JSON (slots with versions, X3), the
-- latest profile attributes, and columns extracted for the read side (C14).
CREATE TABLE consent_state (
    account_id   text        NOT NULL,
    profile_id   text        NOT NULL,
    state        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    profile      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    email        text,
    phone_number text,
    email_status text        NOT NULL DEFAULT 'never_subscribed',
    email_consented_at timestamptz,
    email_method text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, profile_id)
);
CREATE INDEX consent_state_phone ON consent_state (account_id, phone_number)
    WHERE phone_number IS NOT NULL;

-- The append-only audit trail (C2): applied acts, stale acts (X3), pending confirmations
-- (C8) and phone number changes (C6).
CREATE TABLE consent_history (
    id            bigserial   PRIMARY KEY,
    account_id    text        NOT NULL,
    profile_id    text        NOT NULL,
    slot          text        NOT NULL,
    action        text        NOT NULL,
    result        text        NOT NULL,
    status        text        NOT NULL,
    consented_at  timestamptz,
    act_at        timestamptz NOT NULL,
    method        text,
    act_id        text        NOT NULL,
    list_id       text,
    scope         text,
    evidence      text,
    phone_number  text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_history_profile ON consent_history (account_id, profile_id, id);

-- Double opt-in confirmations (C8, C11): one per subscribe request that needs a click.
CREATE TABLE confirmations (
    confirmation_id text        PRIMARY KEY,
    account_id      text        NOT NULL,
    profile_id      text        NOT NULL,
    channel         text        NOT NULL,
    list_id         text,
    scope           text        NOT NULL DEFAULT 'group',
    method          text,
    email           text        NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at    timestamptz
);
CREATE INDEX confirmations_profile ON confirmations (account_id, profile_id);

-- Per-account settings: double opt-in for email (C8), SMS keyword replies (C13), sender.
CREATE TABLE account_settings (
    account_id          text    PRIMARY KEY,
    email_double_opt_in boolean,
    from_email          text,
    sms_reply_stop      text,
    sms_reply_start     text,
    sms_reply_help      text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Read model of the suppression service's `suppression-changes` (C14, S3, S6): the
-- suppressions in force per profile, newest change wins.
CREATE TABLE suppression_view (
    account_id   text        NOT NULL,
    profile_id   text        NOT NULL,
    suppressions jsonb       NOT NULL DEFAULT '[]'::jsonb,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, profile_id)
);
