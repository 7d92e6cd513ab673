-- Every mail paperfeed sends goes through this table. A row is composed once per
-- (subscription, period_key) - the UNIQUE constraint is what makes a rerun, or two
-- senders, unable to compose a second digest for the same period.
-- status: pending -> sending -> sent; pending -> (4xx) pending with a later
-- next_attempt_at; -> failed (5xx or too many attempts); -> suppressed (the
-- address bounced permanently before this row went out); -> cancelled.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('confirm', 'trending', 'alert')),
    period_key      TEXT NOT NULL,                -- 2025-11-22, 2025-W47, confirm-1
    recipient       TEXT NOT NULL,
    message_id      TEXT NOT NULL UNIQUE,         -- derived from the row's identity
    subject         TEXT NOT NULL,
    message         BLOB,                         -- zlib-compressed RFC 5322 bytes; NULL once pruned
    paper_count     INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'suppressed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_code       INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    updated_at      TEXT NOT NULL,
    UNIQUE (subscription_id, period_key)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox (recipient);
