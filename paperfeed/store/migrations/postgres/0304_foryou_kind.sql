-- PostgreSQL twin of migrations/sqlite/0304_foryou_kind.sql: same tables, columns and index names (tests/test_pg_schema.py).
-- "For you" mails are subscriptions and outbox rows like the others; the kind CHECKs admit
-- 'foryou'. PostgreSQL alters a CHECK in place (SQLite has to rebuild the tables).
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_kind_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_kind_check CHECK (kind IN ('trending', 'alert', 'foryou'));
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('confirm', 'trending', 'alert', 'foryou'));
