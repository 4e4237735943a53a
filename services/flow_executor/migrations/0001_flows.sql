-- The flow executor's tables (F1–F7).

CREATE TABLE flows (
    account_id  text        NOT NULL,
    flow_id     text        NOT NULL,
    version     int         NOT NULL,
    definition  jsonb,
    deleted     boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
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

-- One run per (flow, triggering event): the same event never enters twice (F2).
CREATE TABLE runs (
    run_id       uuid        PRIMARY KEY,
    account_id   text        NOT NULL,
    flow_id      text        NOT NULL,
    flow_version int         NOT NULL,
    event_id     text        NOT NULL,
    profile_id   text        NOT NULL,
    trigger_type text        NOT NULL,
    context      jsonb       NOT NULL,
    status       text        NOT NULL DEFAULT 'active',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, flow_id, event_id)
);

-- An action runs once per run (F4): the primary key refuses a second execution.
CREATE TABLE step_executions (
    run_id      uuid        NOT NULL REFERENCES runs,
    step_id     text        NOT NULL,
    account_id  text        NOT NULL,
    flow_id     text        NOT NULL,
    outcome     text        NOT NULL,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX step_executions_flow ON step_executions (account_id, flow_id, step_id, outcome);

-- Durable delays (F3): fired once by whichever replica locks the row first.
CREATE TABLE timers (
    run_id      uuid        NOT NULL REFERENCES runs,
    step_id     text        NOT NULL,
    resume_at   text,
    due_at      timestamptz NOT NULL,
    fired_at    timestamptz,
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL;

-- Alerts held in manual review (F5).
CREATE TABLE reviews (
    alert_id    text        PRIMARY KEY,
    run_id      uuid        NOT NULL REFERENCES runs,
    step_id     text        NOT NULL,
    account_id  text        NOT NULL,
    flow_id     text        NOT NULL,
    status      text        NOT NULL DEFAULT 'in_review',
    decided_by  text,
    decided_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The reachability read model (F7), from consent-changes and suppression-changes.
CREATE TABLE reachability (
    account_id   text        NOT NULL,
    profile_id   text        NOT NULL,
    consent      jsonb,
    consent_at   timestamptz,
    suppressions jsonb       NOT NULL DEFAULT '[]'::jsonb,
    suppressions_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, profile_id)
);
