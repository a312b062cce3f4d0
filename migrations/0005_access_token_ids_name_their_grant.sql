-- A user access token's `jti` now names its grant (`<grant id>.<token id>`), so revoking the grant
-- deactivates the token without a row per issued token: the refresh and code grants write one row less.
-- User access tokens issued before this migration name no grant and are no longer active; their clients
-- get new ones with their refresh tokens, which are unaffected.
DROP TABLE access_tokens;
