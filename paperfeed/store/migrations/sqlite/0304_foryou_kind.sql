-- "For you" mails (issue 13) are subscriptions and outbox rows like the others, so they get the
-- same exactly-once outbox, suppression and RFC 8058 unsubscribe. The kind CHECKs must admit
-- 'foryou'; a CHECK cannot be altered in place (SQLite), so both tables are rebuilt with every
-- column and row kept. outbox references subscriptions, so it is dropped first: dropping
-- subscriptions while outbox still pointed at it would cascade-delete the outbox.
-- NOTE for later migrations: this copies the columns that exist up to 0303 by name.
CREATE TABLE subscriptions_v2 (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('trending', 'alert', 'foryou')),
    period          TEXT NOT NULL CHECK (period IN ('daily', 'weekly')),
    query           TEXT NOT NULL DEFAULT '',
    filters         TEXT NOT NULL DEFAULT '{}',
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'unsubscribed')),
    watermark_seq   INTEGER NOT NULL DEFAULT 0,
    confirm_sent    INTEGER NOT NULL DEFAULT 0,
    last_confirm_at TEXT,
    created_at      TEXT NOT NULL,
    confirmed_at    TEXT,
    unsubscribed_at TEXT,
    updated_at      TEXT NOT NULL,
    epoch           INTEGER NOT NULL DEFAULT 0
);
INSERT INTO subscriptions_v2 (id, email, email_key, kind, period, query, filters, status, watermark_seq,
    confirm_sent, last_confirm_at, created_at, confirmed_at, unsubscribed_at, updated_at, epoch)
SELECT id, email, email_key, kind, period, query, filters, status, watermark_seq, confirm_sent, last_confirm_at,
    created_at, confirmed_at, unsubscribed_at, updated_at, epoch FROM subscriptions;

CREATE TABLE outbox_v2 (
    id              INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions_v2 (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('confirm', 'trending', 'alert', 'foryou')),
    period_key      TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    message_id      TEXT NOT NULL UNIQUE,
    subject         TEXT NOT NULL,
    message         BLOB,
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
INSERT INTO outbox_v2 (id, subscription_id, kind, period_key, recipient, message_id, subject, message, paper_count,
    status, attempts, next_attempt_at, last_code, last_error, created_at, sent_at, updated_at)
SELECT id, subscription_id, kind, period_key, recipient, message_id, subject, message, paper_count, status, attempts,
    next_attempt_at, last_code, last_error, created_at, sent_at, updated_at FROM outbox;

DROP TABLE outbox;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_v2 RENAME TO subscriptions;
ALTER TABLE outbox_v2 RENAME TO outbox;
CREATE UNIQUE INDEX subscriptions_identity ON subscriptions (email_key, kind, period, query, filters);
CREATE INDEX subscriptions_due ON subscriptions (status, period);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox (recipient);
