-- Counts the cancellations of a subscription. A confirmation link signs the count
-- current when it was mailed, so a link mailed before an unsubscribe cannot
-- restart the subscription after someone (anyone: the form takes any address)
-- subscribes the address again; only a link mailed since can.
ALTER TABLE subscriptions ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
