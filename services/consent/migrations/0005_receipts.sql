-- C15, C16: consent receipts. One row per applied consent act of a profile: `receipt`
-- is the receipt's body (every field of ConsentReceipt but its hash), `hash` SHA-256 of
-- its RFC 8785 canonical form, `sequence` its place in the profile's chain (the body
-- carries it too, with the previous receipt's hash). `personal` holds the personal
-- values the receipt commits to by keyed hashes only (email, phone number, evidence):
-- an erase (P2) blanks it and the chain still verifies.
CREATE TABLE consent_receipts (
    id          bigserial   PRIMARY KEY,
    account_id  text        NOT NULL,
    profile_id  text        NOT NULL,
    sequence    integer     NOT NULL,
    receipt_id  text        NOT NULL,
    receipt     jsonb       NOT NULL,
    hash        text        NOT NULL,
    personal    jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_receipts_profile ON consent_receipts (account_id, profile_id, sequence);

-- The end of each profile's chain, kept apart from the receipts (a removed or rewritten
-- last receipt is detected) and kept by an erase (no personal value in it).
CREATE TABLE consent_receipt_heads (
    account_id text    NOT NULL,
    profile_id text    NOT NULL,
    sequence   integer NOT NULL,
    hash       text    NOT NULL,
    PRIMARY KEY (account_id, profile_id)
);

-- C16: an applied history row names the receipt that records it.
ALTER TABLE consent_history ADD COLUMN receipt_id text;

-- C15: a double opt-in's receipt, written when the person confirms, carries the pending
-- subscribe's evidence, notice and jurisdiction.
ALTER TABLE confirmations
    ADD COLUMN evidence     text,
    ADD COLUMN notice       text,
    ADD COLUMN jurisdiction text;
