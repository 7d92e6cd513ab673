-- Email subscriptions: the trending digest and saved-search alerts.
-- status: pending (waiting for the double opt-in click), active, unsubscribed.
CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL,                -- as typed (trimmed)
    email_key       TEXT NOT NULL,                -- lower-cased: one person, one key
    kind            TEXT NOT NULL CHECK (kind IN ('trending', 'alert')),
    period          TEXT NOT NULL CHECK (period IN ('daily', 'weekly')),
    query           TEXT NOT NULL DEFAULT '',     -- alerts only; '' for trending
    filters         TEXT NOT NULL DEFAULT '{}',   -- JSON: category, author, source
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'unsubscribed')),
    -- alerts cover papers with added_seq > watermark_seq; set at confirmation,
    -- advanced in the same transaction that puts an alert in the outbox
    watermark_seq   INTEGER NOT NULL DEFAULT 0,
    confirm_sent    INTEGER NOT NULL DEFAULT 0,   -- how many confirmation mails were queued
    last_confirm_at TEXT,
    created_at      TEXT NOT NULL,
    confirmed_at    TEXT,
    unsubscribed_at TEXT,
    updated_at      TEXT NOT NULL
);
-- subscribing twice to the same thing is the same subscription
CREATE UNIQUE INDEX subscriptions_identity ON subscriptions (email_key, kind, period, query, filters);
CREATE INDEX subscriptions_due ON subscriptions (status, period);

-- Addresses whose server answered a permanent (5xx) error: no more digests go
-- there until the owner confirms a subscription again.
CREATE TABLE mail_suppressions (
    email_key  TEXT PRIMARY KEY,
    code       INTEGER,
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
