-- C6: SMS opt-outs belong to the phone number. Every act of a number itself (STOP and
-- START keywords, and SMS opt-outs made under any profile that carries it) is kept here,
-- so that it holds for every profile that carries the number, now or later: a profile
-- that brings the number afterwards gets these acts folded into its own act log.
CREATE TABLE number_acts (
    account_id   text        NOT NULL,
    phone_number text        NOT NULL,  -- E.164 (I1)
    act_id       text        NOT NULL,
    act          jsonb       NOT NULL,  -- the act as the profile act log keeps it
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, phone_number, act_id)
);
