-- PostgreSQL twin of migrations/sqlite/0502_foryou_mail.sql: same tables, columns and index names (tests/test_pg_schema.py).
-- The "For you" mail of an account (issue 13): its subscriptions row (kind 'foryou') carries the
-- address, period, status and unsubscribe epoch like every other mail; this row says whose
-- library ranks it, from which tag (NULL: all), and how many papers it lists. One per account.
CREATE TABLE foryou_subscriptions (
    subscription_id BIGINT PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    tag_id          BIGINT REFERENCES library_tags (id) ON DELETE SET NULL,
    size            BIGINT NOT NULL DEFAULT 10
);
