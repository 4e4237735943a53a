-- What the activity API and reviews need, and the latest known profile (F3, F5, A6).

-- A timer ends either fired (the walk resumed) or cancelled (its flow was deleted);
-- fired_by names the replica that fired it, which shows that no leader is needed.
ALTER TABLE timers ADD COLUMN outcome text, ADD COLUMN fired_by text;

-- A held action keeps the step and the request exactly as they stood when held, so
-- an approval sends what was reviewed even if the flow changed meanwhile.
ALTER TABLE reviews ADD COLUMN profile_id text, ADD COLUMN step jsonb,
    ADD COLUMN request jsonb;

CREATE INDEX runs_flow ON runs (account_id, flow_id, status);
CREATE INDEX reviews_flow ON reviews (account_id, flow_id, status);

-- The newest profile data seen on profile-events and consent-changes: splits and the
-- profile filter before an action look at the profile as it is when the step runs.
CREATE TABLE profiles (
    account_id  text        NOT NULL,
    profile_id  text        NOT NULL,
    profile     jsonb       NOT NULL,
    seen_at     timestamptz NOT NULL,
    PRIMARY KEY (account_id, profile_id)
);
