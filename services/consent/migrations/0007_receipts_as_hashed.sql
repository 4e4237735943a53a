-- C15, C16: a receipt's body is kept as the bytes that were hashed, its RFC 8785
-- canonical form. A `json` column keeps its text as written; `jsonb` parsed it into a
-- form of its own on every insert (a fifth of consent's database time per act) and gave
-- it back with its keys in another order. Nothing queries inside a receipt: it is read
-- whole, to be shown or verified.
ALTER TABLE consent_receipts ALTER COLUMN receipt TYPE json USING receipt::json;
