-- The alert dispatcher's tables (A1–A9).

CREATE TABLE flow_versions (
    account_id text NOT NULL,
    flow_id    text NOT NULL,
    version    int  NOT NULL,
    deleted    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (account_id, flow_id)
);

CREATE TABLE flow_rejections (
    account_id  text        NOT NULL,
    flow_id     text        NOT NULL,
    version     int         NOT NULL,
    errors      jsonb       NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, flow_id, version)
);

CREATE TABLE alert_actions (
    account_id   text   NOT NULL,
    flow_id      text   NOT NULL,
    step_id      text   NOT NULL,
    flow_version int    NOT NULL,
    mode         text   NOT NULL,
    recipients   text[] NOT NULL,
    PRIMARY KEY (account_id, flow_id, step_id)
);

CREATE TABLE recipients (
    account_id   text        NOT NULL,
    email        text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('unconfirmed', 'confirmed', 'disabled')),
    generation   int         NOT NULL DEFAULT 1,
    confirmed_at timestamptz,
    disabled_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, email)
);

CREATE TABLE alerts (
    alert_id     text        PRIMARY KEY,
    account_id   text        NOT NULL,
    flow_id      text        NOT NULL,
    step_id      text        NOT NULL,
    profile_id   text        NOT NULL,
    status       text        NOT NULL DEFAULT 'sending'
                 CHECK (status IN ('sending', 'sent', 'skipped', 'failed')),
    reason       text,
    requested_at timestamptz NOT NULL,
    completed_at timestamptz
);
CREATE INDEX alerts_action ON alerts (account_id, flow_id, step_id, status);

CREATE TABLE alert_deliveries (
    alert_id  text   NOT NULL REFERENCES alerts,
    email     text   NOT NULL,
    mail_id   bigint NOT NULL,
    status    text   NOT NULL DEFAULT 'pending',
    error     text,
    PRIMARY KEY (alert_id, email)
);
CREATE UNIQUE INDEX alert_deliveries_mail ON alert_deliveries (mail_id);
