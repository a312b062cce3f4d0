-- Users and OAuth clients. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT); ids are text; lists of URIs are JSON arrays; scope and grant lists are
-- space-delimited, as on the wire (RFC 6749 §3.3).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id                  TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret_hash                TEXT,
    token_endpoint_auth_method TEXT NOT NULL,
    redirect_uris              TEXT NOT NULL,
    post_logout_redirect_uris  TEXT NOT NULL,
    grant_types                TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    created_at                 BIGINT NOT NULL
);
