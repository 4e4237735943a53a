-- I1, C6: an opt-out belongs to the address or number it was made for. Every act of a
-- number itself (STOP and START keywords), every SMS opt-out made under any profile
-- (kept for its number) and every email opt-out (kept for the address, in its I1 normal
-- form) is kept here, so that it holds for every profile that carries the address or
-- number, now or later: a profile that brings it afterwards gets these acts folded into
-- its own act log. `identity` is `phone:<E.164>` or `email:<normal form>`.
CREATE TABLE identity_acts (
    account_id   text        NOT NULL,
    identity     text        NOT NULL,
    act_id       text        NOT NULL,
    act          jsonb       NOT NULL,  -- the act as the profile act log keeps it
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, identity, act_id)
);
