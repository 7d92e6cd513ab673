-- Paused subscriptions: kept, confirmed, and sent nothing until resumed. A table of its
-- own rather than a status, so pausing keeps the subscription's state (and the CHECK on
-- subscriptions.status) as it is.
CREATE TABLE subscription_pauses (
    subscription_id INTEGER PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    paused_at       TEXT NOT NULL
);
