-- Refresh tokens are purged by the time they were issued, through an index on it, rather than by their grant.
--
-- The index on `grant_id` served only the purge, and every rotation paid for it: the successor's entry lands
-- at the place of its grant's id, a random page of the index, which each commit then logs whole (on SQLite a
-- 4 KiB frame, about a third of the log a refresh writes). Tokens are issued in time order, so the new
-- index's entries land on its last page, which the tokens of one batch share.
--
-- A grant ends at most IDP_REFRESH_TOKEN_ABSOLUTE_TTL after it was made, so a token issued longer ago than
-- that belongs to a grant that has ended: the purge deletes it then (and a day more), spent or not. A spent
-- token is kept as long as its grant can live, so presenting it again still revokes the grant.
--
-- The new index is built before the old one is dropped: on PostgreSQL, dropping an index locks the table
-- against reads too, until the end of the migration's transaction.
CREATE INDEX refresh_tokens_created ON refresh_tokens (created_at);
DROP INDEX refresh_tokens_grant;
