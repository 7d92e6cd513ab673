-- PostgreSQL twin of migrations/sqlite/0305_subscription_pauses.sql: same tables, columns and index names (tests/test_pg_schema.py).
-- Paused subscriptions: kept, confirmed, and sent nothing until resumed. A table of its
-- own rather than a status, so pausing keeps the subscription's state (and the CHECK on
-- subscriptions.status) as it is.
CREATE TABLE subscription_pauses (
    subscription_id BIGINT PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    paused_at       TEXT NOT NULL
);
