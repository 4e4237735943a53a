-- How an account's pages and mails look and speak (W1, W2, W3): branding, language,
-- list names for the preference centre, and whether an opt-out is confirmed by mail.
-- Each service that shows pages keeps its own copy, set through its settings API.
CREATE TABLE IF NOT EXISTS account_pages (
    account_id                text        PRIMARY KEY,
    display_name              text,
    logo_url                  text,
    accent_colour             text,
    support_email             text,
    language                  text,
    list_names                jsonb,
    optout_confirmation_email boolean,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
