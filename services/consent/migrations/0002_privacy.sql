-- Data-subject requests (P1–P3) and what an erase keeps (P2).

-- A request as the consent service saw it (no address: only what it resolved to).
CREATE TABLE privacy_requests (
    request_id   text        NOT NULL,
    account_id   text        NOT NULL,
    action       text        NOT NULL CHECK (action IN ('export', 'erase')),
    requested_at timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, request_id)
);

-- Each service's part as it arrives on privacy-results; an export's data is kept until
-- the same person is erased.
CREATE TABLE privacy_parts (
    request_id   text        NOT NULL,
    account_id   text        NOT NULL,
    service      text        NOT NULL,
    action       text        NOT NULL,
    profile_ids  text[]      NOT NULL,
    data         jsonb,
    erased       jsonb,
    completed_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, request_id, service)
);
CREATE INDEX privacy_parts_profiles ON privacy_parts USING gin (profile_ids);

-- Keyed hashes (HMAC, PRIVACY_HASH_SECRET) of erased emails and phone numbers: a later
-- subscribe for one of them is suppressed unless it carries evidence of new consent.
CREATE TABLE erased_subjects (
    account_id   text        NOT NULL,
    subject_hash text        NOT NULL,
    request_id   text        NOT NULL,
    erased_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, subject_hash)
);
