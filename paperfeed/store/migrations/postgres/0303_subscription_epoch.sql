-- PostgreSQL twin of migrations/sqlite/0303_subscription_epoch.sql: same tables, columns and index names (tests/test_pg_schema.py).
-- Counts the cancellations of a subscription. A confirmation link signs the count
-- current when it was mailed, so a link mailed before an unsubscribe cannot
-- restart the subscription after someone (anyone: the form takes any address)
-- subscribes the address again; only a link mailed since can.
ALTER TABLE subscriptions ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
