-- C16: the end of each profile's receipt chain is kept on the profile's consent row,
-- written by the same statement as its state (one row per act instead of two). The
-- table of heads stays for the chains of profiles whose consent row is gone (an erase
-- moves the head there, P2) and for heads written before these columns existed: a
-- chain's head is the one of the two with the higher sequence.
ALTER TABLE consent_state
    ADD COLUMN receipt_sequence integer,
    ADD COLUMN receipt_hash     text;
UPDATE consent_state s SET receipt_sequence = h.sequence, receipt_hash = h.hash
    FROM consent_receipt_heads h
    WHERE h.account_id = s.account_id AND h.profile_id = s.profile_id;

-- X2: a consent command is applied once. The audit trail proves an act it recorded:
-- a redelivered command whose id is already in a profile's history is skipped.
CREATE INDEX consent_history_act ON consent_history (account_id, act_id);
