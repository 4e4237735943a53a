-- F8: a message step held by quiet hours waits on a timer as a delay does; `kind` says
-- whether the run goes on after the step (`delay`) or tries the step again
-- (`quiet_hours`).
ALTER TABLE timers ADD COLUMN kind text NOT NULL DEFAULT 'delay';

-- F8: an account's sending window (minutes after local midnight, start included, end
-- excluded), its zone and whether email steps keep quiet hours. No row: the defaults.
CREATE TABLE sending_settings (
    account_id        text        PRIMARY KEY,
    window_start      int         NOT NULL,
    window_end        int         NOT NULL,
    timezone          text        NOT NULL,
    email_quiet_hours boolean     NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (0 <= window_start AND window_start < window_end AND window_end <= 1440)
);

-- F9: when the executor last published a message request to a profile on a channel
-- (`email`, `sms`), by any flow; written in the transaction of its outbox row.
CREATE TABLE sent_messages (
    account_id  text        NOT NULL,
    profile_id  text        NOT NULL,
    channel     text        NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (account_id, profile_id, channel)
);
