-- PostgreSQL only (SQLite compares text bytewise already): the key columns of the issuer's tables, which it
-- looks rows up by or joins on, compare bytewise (`COLLATE "C"`) rather than by the database's collation.
--
-- These keys are opaque ASCII (hashes, ids, `jti`s, client ids), so no order of them means more than another.
-- - Speed: a B-tree search compares a key with `memcmp` rather than `strcoll`. With an `en_US.UTF-8` database,
--   PostgreSQL spent 12-26% more CPU per refresh-token grant than with `C.UTF-8`; a text comparison was 7% of
--   its time even there (docs/performance.md).
-- - Safety: an index by a linguistic collation holds its entries in the order of the C library's rules of the
--   day, and glibc releases change them (PostgreSQL then asks for a REINDEX). A key index that no longer matches
--   those rules finds nothing where it should: here, a refresh token or a grant. A bytewise order never moves.
-- E-mail addresses, names and scopes keep the database's collation, as does the embedded session store's
-- table (session-store), which is not made by these migrations.
--
-- A column's collation changes without rewriting its table; each index on it is built again. Every table
-- stays locked, reads included, until the migration commits (seconds per million rows), and statements that
-- running nodes prepared before it fail once it has run: stop every node first (docs/deployment.md).
ALTER TABLE users ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE clients ALTER COLUMN client_id TYPE TEXT COLLATE "C";
ALTER TABLE authorization_codes
    ALTER COLUMN code_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN client_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN sid TYPE TEXT COLLATE "C",
    ALTER COLUMN grant_id TYPE TEXT COLLATE "C";
ALTER TABLE grants
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN client_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN sid TYPE TEXT COLLATE "C";
ALTER TABLE refresh_tokens
    ALTER COLUMN token_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN grant_id TYPE TEXT COLLATE "C";
ALTER TABLE revoked_access_tokens ALTER COLUMN jti TYPE TEXT COLLATE "C";
ALTER TABLE consents
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN client_id TYPE TEXT COLLATE "C";
ALTER TABLE backchannel_deliveries
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN client_id TYPE TEXT COLLATE "C",
    ALTER COLUMN sid TYPE TEXT COLLATE "C";
-- Changing a column's type drops its statistics: gather them again now rather than when autovacuum next finds
-- enough changed rows, which on a quiet table such as `clients` may be long.
ANALYZE users, clients, authorization_codes, grants, refresh_tokens, revoked_access_tokens, consents,
    backchannel_deliveries;
