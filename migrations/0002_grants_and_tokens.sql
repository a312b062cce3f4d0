-- Authorization codes, grants (token families), refresh and access tokens, revocations and consents.
-- Secrets (codes, refresh tokens) are stored only as SHA-256 hashes.

-- RFC 6749 §4.1.2: single use, bound to client, redirect URI and PKCE challenge; 60 s lifetime.
CREATE TABLE authorization_codes (
    code_hash    TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope        TEXT NOT NULL,
    pkce         TEXT,
    nonce        TEXT,
    auth_time    BIGINT NOT NULL,
    sid          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    -- Set at the first redemption, together with the grant it made: a second use revokes that grant.
    redeemed_at  BIGINT,
    grant_id     TEXT
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

-- A grant is one authorization and every token descending from it (RFC 9700 §4.14: the token family).
CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    sid        TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_user ON grants (user_id);
CREATE INDEX grants_sid ON grants (sid);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set when exchanged: presenting a rotated token again is reuse (RFC 9700 §4.14.2).
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

-- The user access tokens of each grant, so that revoking the grant makes them inactive.
CREATE TABLE access_tokens (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);

-- Access tokens revoked one by one (RFC 7009), kept until they would have expired.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- What a user agreed to share with a client; a later request for the same or fewer scopes skips the page.
CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
