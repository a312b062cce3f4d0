-- OpenID Connect Back-Channel Logout 1.0: where a client wants logout tokens, and the deliveries owed to it.

ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;

-- An outbox: a delivery is written in the same transaction as the revocation that causes it, then sent (and
-- retried with backoff) by a background worker, so that no logout is lost to a crash or a receiver outage.
CREATE TABLE backchannel_deliveries (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    uri             TEXT NOT NULL,
    sub             TEXT NOT NULL,
    sid             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A node sending it holds it until this time, so that two nodes do not send it at once.
    locked_until    BIGINT,
    delivered_at    BIGINT,
    -- Set when retries stop (the receiver kept failing for a day); kept for operators to see.
    abandoned_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX backchannel_deliveries_due ON backchannel_deliveries (delivered_at, abandoned_at, next_attempt_at);
