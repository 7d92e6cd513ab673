-- Email verification for accounts. Sign-up does not prove that the person owns
-- the address they typed, so subscriptions (which are keyed by address) are
-- shown only to accounts whose address was proven with a mailed, signed link.
-- Existing accounts start unverified on purpose: any of them may have been
-- registered with someone else's address. Their owners verify once from
-- /account/subscriptions.
ALTER TABLE users ADD COLUMN email_verified_at TEXT;
-- when the last verification mail was queued: one per account per few minutes
ALTER TABLE users ADD COLUMN verify_sent_at TEXT;
