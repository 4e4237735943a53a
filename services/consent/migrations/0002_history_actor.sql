-- C2: by whom (API key, command actor, the profile itself); X3: the future time an act
-- claimed before it was clamped to its receipt; C11, X3a: why an act was rejected.
ALTER TABLE consent_history
    ADD COLUMN actor      text,
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN reason     text;
