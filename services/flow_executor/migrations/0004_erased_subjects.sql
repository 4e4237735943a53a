-- P2, I1: an erased person is not messaged again. No address is kept: a subject is
-- 'profile:' and the SHA-256 of an erased profile id, or the keyed hash (HMAC under
-- PRIVACY_HASH_SECRET) of an erased email or phone number in its normal form.
CREATE TABLE erased_subjects (
    account_id  text        NOT NULL,
    subject     text        NOT NULL,
    erased_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, subject)
);

-- When a consent change last subscribed a profile to a channel family (email, sms,
-- push), as it arrived here: an erase hold on that channel lifts only for a subscribe
-- that arrived after the erase. Kept only for profiles an erase holds.
CREATE TABLE resubscriptions (
    account_id  text        NOT NULL,
    profile_id  text        NOT NULL,
    family      text        NOT NULL,
    arrived_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, profile_id, family)
);
