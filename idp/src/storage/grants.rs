//! Authorization codes, grants (token families), refresh tokens, revoked access tokens and consents.
//!
//! Every use of a code or a refresh token ends in a conditional `UPDATE` that marks it used, so of two
//! concurrent uses exactly one wins, and the loser can revoke what the winner made (RFC 9700 §4.14.2,
//! ASVS 10.4.2). A code's grant and refresh token are written in the same transaction as the `UPDATE` that
//! spends it ([`Grants::redeem_code`]), and a refresh token's successor in the same transaction as the `UPDATE`
//! that spends it ([`Grants::rotate_refresh_token`]).

use sqlx::{Any, AnyPool, Transaction};

use super::StorageError;
use super::codes::CodeBatches;
use super::refresh::RefreshBatches;
use super::users::{self, UserRow};
use crate::domain::grants::Grant;
use crate::domain::scope::Scopes;
use crate::domain::users::User;

/// An authorization code as stored (its hash is the key).
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    /// The PKCE challenge as oxide-auth encodes it.
    pub pkce: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub sid: String,
    pub expires_at: i64,
}

/// A client's access to a user's account: its consent (if any) and its live grants.
#[derive(Debug, Clone)]
pub struct AppAccess {
    pub client_id: String,
    pub scope: Option<Scopes>,
    pub granted_at: Option<i64>,
    pub live_grants: i64,
}

/// A refresh token as stored, with its grant.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub grant: Grant,
}

/// A refresh token presented for a new one: its record, and the grant's user (`None` once deleted).
#[derive(Debug, Clone)]
pub struct RefreshUse {
    pub record: RefreshRecord,
    pub user: Option<User>,
}

/// What [`Grants::rotate_refresh_token`] writes: the successor of a refresh token.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    /// The hash of the token presented.
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    pub grant_id: &'a str,
    pub expires_at: i64,
    pub now: i64,
}

/// A user access token's grant, as userinfo reads it.
#[derive(Debug, Clone)]
pub struct UserTokenGrant {
    /// The grant is not revoked, nor the token by itself.
    pub active: bool,
    /// The grant's user; `None` once deleted.
    pub user: Option<User>,
}

macro_rules! grant_columns {
    () => {
        "g.id, g.client_id, g.user_id, g.scope, g.sid, g.auth_time, g.created_at, g.expires_at, g.revoked_at"
    };
}

#[derive(Clone, sqlx::FromRow)]
struct CodeRow {
    client_id: String,
    user_id: String,
    redirect_uri: String,
    scope: String,
    pkce: Option<String>,
    nonce: Option<String>,
    auth_time: i64,
    sid: String,
    expires_at: i64,
    redeemed_at: Option<i64>,
}

#[derive(Clone, sqlx::FromRow)]
struct GrantRow {
    id: String,
    client_id: String,
    user_id: String,
    scope: String,
    sid: String,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StorageError;

    fn try_from(row: GrantRow) -> Result<Grant, StorageError> {
        let scope =
            Scopes::parse(&row.scope).map_err(|e| StorageError::Corrupt(format!("scope of grant {}: {e}", row.id)))?;
        Ok(Grant {
            id: row.id,
            client_id: row.client_id,
            user_id: row.user_id,
            scope,
            sid: row.sid,
            auth_time: row.auth_time,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(Clone, sqlx::FromRow)]
struct RefreshRow {
    token_expires_at: i64,
    rotated_at: Option<i64>,
    #[sqlx(flatten)]
    grant: GrantRow,
}

/// The columns of a grant's user in a `LEFT JOIN users u`, all null when that user is gone.
#[derive(Clone, sqlx::FromRow)]
struct JoinedUser {
    user_email: Option<String>,
    user_name: Option<String>,
    user_password_hash: Option<String>,
    user_created_at: Option<i64>,
}

impl JoinedUser {
    fn into_user(self, user_id: String) -> Result<Option<User>, StorageError> {
        match (self.user_email, self.user_password_hash, self.user_created_at) {
            (Some(email), Some(hash), Some(created_at)) => {
                let row: UserRow = (user_id, email, self.user_name, hash, created_at);
                Ok(Some(users::from_row(row)?))
            }
            _ => Ok(None),
        }
    }
}

/// A code as stored, with its user: what the authorization-code grant reads.
#[derive(Debug)]
pub struct CodeUse {
    pub code: CodeRecord,
    /// Whether it was spent already.
    pub redeemed: bool,
    /// `None` when the user is gone.
    pub user: Option<User>,
}

/// A code row with its hash and its user ([`CODE_USE_SELECT`]).
#[derive(Clone, sqlx::FromRow)]
pub(super) struct CodeUseRow {
    pub(super) code_hash: String,
    #[sqlx(flatten)]
    code: CodeRow,
    #[sqlx(flatten)]
    user: JoinedUser,
}

impl TryFrom<CodeUseRow> for CodeUse {
    type Error = StorageError;

    fn try_from(row: CodeUseRow) -> Result<CodeUse, StorageError> {
        let CodeRow { client_id, user_id, redirect_uri, scope, pkce, nonce, auth_time, sid, expires_at, redeemed_at } =
            row.code;
        let user = row.user.into_user(user_id.clone())?;
        let code = CodeRecord { client_id, user_id, redirect_uri, scope, pkce, nonce, auth_time, sid, expires_at };
        Ok(CodeUse { code, redeemed: redeemed_at.is_some(), user })
    }
}

/// What the authorization-code grant reads of a code ([`CodeUseRow`]), without its `WHERE` clause.
macro_rules! code_use_select {
    () => {
        "SELECT c.code_hash, c.client_id, c.user_id, c.redirect_uri, c.scope, c.pkce, c.nonce, c.auth_time, c.sid, \
         c.expires_at, c.redeemed_at, u.email AS user_email, u.name AS user_name, \
         u.password_hash AS user_password_hash, u.created_at AS user_created_at \
         FROM authorization_codes c LEFT JOIN users u ON u.id = c.user_id"
    };
}
pub(super) const CODE_USE_SELECT: &str = code_use_select!();
/// The code uses of a batch on PostgreSQL, their hashes joined by spaces in `$1` (`storage::codes`).
pub(super) const CODE_USES_SELECT_POSTGRES: &str =
    concat!(code_use_select!(), " WHERE c.code_hash = ANY (string_to_array($1, ' '))");

/// A refresh row with its hash, its grant and its grant's user ([`REFRESH_USE_SELECT`]).
#[derive(Clone, sqlx::FromRow)]
pub(super) struct RefreshUseRow {
    pub(super) token_hash: String,
    #[sqlx(flatten)]
    refresh: RefreshRow,
    #[sqlx(flatten)]
    user: JoinedUser,
}

#[derive(sqlx::FromRow)]
struct UserTokenGrantRow {
    revoked_at: Option<i64>,
    revoked_alone: i64,
    user_id: String,
    #[sqlx(flatten)]
    user: JoinedUser,
}

impl TryFrom<RefreshRow> for RefreshRecord {
    type Error = StorageError;

    fn try_from(row: RefreshRow) -> Result<RefreshRecord, StorageError> {
        Ok(RefreshRecord { expires_at: row.token_expires_at, rotated_at: row.rotated_at, grant: row.grant.try_into()? })
    }
}

impl TryFrom<RefreshUseRow> for RefreshUse {
    type Error = StorageError;

    fn try_from(row: RefreshUseRow) -> Result<RefreshUse, StorageError> {
        let user = row.user.into_user(row.refresh.grant.user_id.clone())?;
        Ok(RefreshUse { record: row.refresh.try_into()?, user })
    }
}

/// What the refresh grant reads of a token ([`RefreshUseRow`]), without its `WHERE` clause: a macro, so that
/// the PostgreSQL batch's query, which adds one, is a constant too.
macro_rules! refresh_use_select {
    () => {
        concat!(
            "SELECT r.token_hash, r.expires_at AS token_expires_at, r.rotated_at, ",
            grant_columns!(),
            ", u.email AS user_email, u.name AS user_name, u.password_hash AS user_password_hash, \
             u.created_at AS user_created_at \
             FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id LEFT JOIN users u ON u.id = g.user_id"
        )
    };
}
pub(super) const REFRESH_USE_SELECT: &str = refresh_use_select!();
/// The refresh uses of a batch on PostgreSQL, their hashes joined by spaces in `$1` (`storage::refresh`).
pub(super) const REFRESH_USES_SELECT_POSTGRES: &str =
    concat!(refresh_use_select!(), " WHERE r.token_hash = ANY (string_to_array($1, ' '))");

pub struct Grants<'a> {
    /// Reads.
    pool: &'a AnyPool,
    /// Writes: SQLite's writer connection, else `pool` (see [`super::Database`]). Waiting for it is bounded by
    /// the pool's 5 s acquire timeout (then 503).
    writes: &'a AnyPool,
    /// The refresh grant's read and rotation, run in batches (`storage::refresh`).
    refresh: &'a RefreshBatches,
    /// The authorization-code grant's reads and redemptions, run in batches (`storage::codes`).
    codes: &'a CodeBatches,
}

impl<'a> Grants<'a> {
    pub(super) fn new(
        pool: &'a AnyPool,
        writes: &'a AnyPool,
        refresh: &'a RefreshBatches,
        codes: &'a CodeBatches,
    ) -> Self {
        Grants { pool, writes, refresh, codes }
    }

    /// Starts a transaction, after the one writing before it (SQLite; see [`super::Database`]).
    pub async fn begin(&self) -> Result<GrantTx, StorageError> {
        Ok(GrantTx { tx: super::begin(self.writes).await? })
    }

    pub async fn insert_code(&self, code_hash: &str, code: &CodeRecord, now: i64) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scope, pkce, nonce, \
             auth_time, sid, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(code_hash)
        .bind(&code.client_id)
        .bind(&code.user_id)
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(code.pkce.as_deref())
        .bind(code.nonce.as_deref())
        .bind(code.auth_time)
        .bind(&code.sid)
        .bind(now)
        .bind(code.expires_at)
        .execute(self.writes)
        .await?;
        Ok(())
    }

    /// A code as stored, spent or not, with its user: what the authorization-code grant reads. It is read in
    /// one query with the reads of concurrent requests (`storage::codes`): on SQLite's writer connection, or on
    /// the reading batcher's PostgreSQL connection.
    pub async fn find_code_use(&self, code_hash: &str) -> Result<Option<CodeUse>, StorageError> {
        self.codes.find_use(code_hash).await
    }

    /// Spends a code and writes the grant made from it, with the grant's refresh token (hash and expiry) when
    /// there is one, in one transaction, batched with concurrent redemptions (`storage::codes`). False, with
    /// nothing written, when the code was already spent.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        grant: &Grant,
        refresh_token: Option<(&str, i64)>,
    ) -> Result<bool, StorageError> {
        self.codes.redeem(code_hash, grant, refresh_token).await
    }

    /// Marks a code used without making anything from it (a failed redemption spends the code too).
    /// Returns whether it was still unused.
    pub async fn burn_code(&self, code_hash: &str, now: i64) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE authorization_codes SET redeemed_at = $1 WHERE code_hash = $2 AND redeemed_at IS NULL")
                .bind(now)
                .bind(code_hash)
                .execute(self.writes)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The grant made from a code that was already redeemed, if any.
    pub async fn grant_of_redeemed_code(&self, code_hash: &str) -> Result<Option<String>, StorageError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT grant_id FROM authorization_codes WHERE code_hash = $1 AND redeemed_at IS NOT NULL")
                .bind(code_hash)
                .fetch_optional(self.pool)
                .await?;
        Ok(row.and_then(|(id,)| id))
    }

    /// Revokes a grant: its refresh tokens and access tokens become inactive. Returns whether it was live.
    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(grant_id)
            .execute(self.writes)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StorageError> {
        let row: Option<RefreshRow> = sqlx::query_as(concat!(
            "SELECT r.expires_at AS token_expires_at, r.rotated_at, ",
            grant_columns!(),
            " FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.pool)
        .await?;
        row.map(RefreshRecord::try_from).transpose()
    }

    /// A refresh token with its grant and the grant's user: what the refresh grant reads. It is read in one
    /// query with the reads of concurrent requests (`storage::refresh`): on SQLite's writer connection, or on
    /// the reading batcher's PostgreSQL connection.
    pub async fn find_refresh_token_use(&self, token_hash: &str) -> Result<Option<RefreshUse>, StorageError> {
        self.refresh.find_use(token_hash).await
    }

    /// Replaces a refresh token by its successor; false, with the presented token left as it was, when it had
    /// already been rotated (by a concurrent request, or a replay).
    ///
    /// The successor is written only with the presented token's spending, by a conditional `UPDATE`, the one
    /// statement that decides: a refused rotation leaves no successor. Both commit together or not at all, so
    /// an error or a dropped request before the commit loses nothing. After it, as after any commit, an answer
    /// that never reaches the client costs the client its refresh token.
    ///
    /// The rotations of concurrent requests are written together, in one transaction (`storage::refresh`).
    pub async fn rotate_refresh_token(&self, rotation: &Rotation<'_>) -> Result<bool, StorageError> {
        self.refresh.rotate(rotation).await
    }

    /// Whether a user access token (`jti`, of grant `grant_id`) is still active: its grant not revoked, nor
    /// the token by itself. `None` when there is no such grant.
    pub async fn user_access_token_active(&self, grant_id: &str, jti: &str) -> Result<Option<bool>, StorageError> {
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT g.revoked_at, (SELECT COUNT(*) FROM revoked_access_tokens v WHERE v.jti = $2) \
             FROM grants g WHERE g.id = $1",
        )
        .bind(grant_id)
        .bind(jti)
        .fetch_optional(self.pool)
        .await?;
        Ok(row.map(|(grant_revoked_at, revoked_alone)| grant_revoked_at.is_none() && revoked_alone == 0))
    }

    /// The same, with the grant's user, in one query: what userinfo reads. `None` when there is no such grant.
    pub async fn user_access_token_grant(
        &self,
        grant_id: &str,
        jti: &str,
    ) -> Result<Option<UserTokenGrant>, StorageError> {
        let row: Option<UserTokenGrantRow> = sqlx::query_as(
            "SELECT g.revoked_at, (SELECT COUNT(*) FROM revoked_access_tokens v WHERE v.jti = $2) AS revoked_alone, \
             g.user_id, u.email AS user_email, u.name AS user_name, u.password_hash AS user_password_hash, \
             u.created_at AS user_created_at \
             FROM grants g LEFT JOIN users u ON u.id = g.user_id WHERE g.id = $1",
        )
        .bind(grant_id)
        .bind(jti)
        .fetch_optional(self.pool)
        .await?;
        row.map(|row| {
            Ok(UserTokenGrant {
                active: row.revoked_at.is_none() && row.revoked_alone == 0,
                user: row.user.into_user(row.user_id)?,
            })
        })
        .transpose()
    }

    /// Whether a client's own access token (client credentials: `jti`, issued to `client_id`) is still
    /// active: its client not deleted, nor the token revoked by itself. It names no grant, so deleting the
    /// client, which revokes the client's grants, ends it here.
    pub async fn client_access_token_active(&self, client_id: &str, jti: &str) -> Result<bool, StorageError> {
        let (clients, revoked): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM clients WHERE client_id = $1), \
                    (SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $2)",
        )
        .bind(client_id)
        .bind(jti)
        .fetch_one(self.pool)
        .await?;
        Ok(clients == 1 && revoked == 0)
    }

    /// Revokes one access token until it would have expired anyway (RFC 7009 §2.1).
    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StorageError> {
        sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(self.writes)
            .await?;
        Ok(())
    }

    /// The browser sessions (`sid`s) that the user's live grants were issued in, in the order of their `sid`s,
    /// each once. A grant outlives its session's
    /// entry in the session store: an `offline_access` refresh token lasts weeks, a signed-in session idles
    /// out in hours.
    pub async fn sessions_with_live_grants(&self, user_id: &str, now: i64) -> Result<Vec<String>, StorageError> {
        let sids: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT sid FROM grants WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY sid",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(self.pool)
        .await?;
        Ok(sids.into_iter().map(|(sid,)| sid).collect())
    }

    /// The clients that hold a user's consent or a live grant, with the scopes and the number of live grants.
    pub async fn apps_of_user(&self, user_id: &str, now: i64) -> Result<Vec<AppAccess>, StorageError> {
        let rows: Vec<(String, Option<String>, Option<i64>, i64)> = sqlx::query_as(
            "SELECT c.client_id, c.scope, c.granted_at, \
             (SELECT COUNT(*) FROM grants g WHERE g.user_id = $1 AND g.client_id = c.client_id \
              AND g.revoked_at IS NULL AND g.expires_at > $2) \
             FROM (SELECT client_id, scope, granted_at FROM consents WHERE user_id = $1 \
                   UNION SELECT DISTINCT client_id, CAST(NULL AS TEXT), CAST(NULL AS BIGINT) FROM grants \
                   WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                   AND client_id NOT IN (SELECT client_id FROM consents WHERE user_id = $1)) c \
             ORDER BY c.client_id",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(self.pool)
        .await?;
        rows.into_iter()
            .map(|(client_id, scope, granted_at, live_grants)| {
                let scope = scope
                    .map(|s| Scopes::parse(&s).map_err(|e| StorageError::Corrupt(format!("consent scope: {e}"))))
                    .transpose()?;
                Ok(AppAccess { client_id, scope, granted_at, live_grants })
            })
            .collect()
    }

    /// Deletes what can no longer matter, `keep` seconds after it stopped mattering: codes past their lifetime
    /// (kept a while to detect reuse), grants expired or revoked, refresh tokens whose grant has ended,
    /// back-channel logouts delivered or abandoned, and deny-list entries past their token's expiry (at once).
    /// Returns how many rows went.
    ///
    /// A grant ends at most `grant_lifetime` seconds (`IDP_REFRESH_TOKEN_ABSOLUTE_TTL`) after it was made, so a
    /// refresh token issued longer ago than that belongs to an ended grant, spent or not. Until then a spent
    /// token is kept, so that presenting it again revokes its grant however long ago it was spent. A revoked
    /// grant's tokens are refused from the moment of revocation (every use reads the token with its grant, and
    /// one whose grant is gone is not found) and go at that same time.
    pub async fn purge_expired(&self, now: i64, keep: i64, grant_lifetime: i64) -> Result<u64, StorageError> {
        let before = now - keep;
        let mut removed = 0;
        for (sql, bound) in [
            ("DELETE FROM authorization_codes WHERE expires_at < $1", before),
            ("DELETE FROM revoked_access_tokens WHERE expires_at < $1", now),
            ("DELETE FROM refresh_tokens WHERE created_at < $1", before.saturating_sub(grant_lifetime)),
            ("DELETE FROM grants WHERE expires_at < $1 OR revoked_at < $1", before),
            ("DELETE FROM backchannel_deliveries WHERE delivered_at < $1 OR abandoned_at < $1", before),
        ] {
            removed += sqlx::query(sql).bind(bound).execute(self.writes).await?.rows_affected();
        }
        Ok(removed)
    }

    /// The scopes a user has already granted a client.
    pub async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Scopes>, StorageError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(self.pool)
            .await?;
        row.map(|(scope,)| Scopes::parse(&scope).map_err(|e| StorageError::Corrupt(format!("consent scope: {e}"))))
            .transpose()
    }

    /// Records the scopes granted (replacing the previous record; callers pass the union they want kept).
    pub async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &Scopes,
        now: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope.to_string())
        .bind(now)
        .execute(self.writes)
        .await?;
        Ok(())
    }
}

/// A transaction over the grant tables; dropped without [`GrantTx::commit`] it rolls back.
pub struct GrantTx {
    /// On SQLite, the writer connection: the process's write turn, held until commit or rollback.
    tx: Transaction<'static, Any>,
}

impl GrantTx {
    pub async fn insert_grant(&mut self, grant: &Grant) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO grants (id, client_id, user_id, scope, sid, auth_time, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&grant.id)
        .bind(&grant.client_id)
        .bind(&grant.user_id)
        .bind(grant.scope.to_string())
        .bind(&grant.sid)
        .bind(grant.auth_time)
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn insert_refresh_token(
        &mut self,
        token_hash: &str,
        grant_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(grant_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Revokes every live grant of browser session `sid` and, in the same transaction, queues a back-channel
    /// logout for each client that took part in the session and registered a `backchannel_logout_uri`.
    /// Returns how many grants were revoked.
    pub async fn end_session(&mut self, user_id: &str, sid: &str, now: i64) -> Result<u64, StorageError> {
        let revoked =
            sqlx::query("UPDATE grants SET revoked_at = $1 WHERE sid = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(sid)
                .bind(user_id)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
        // One delivery per (session, client): the id is their concatenation, so a second end is a no-op.
        sqlx::query(
            "INSERT INTO backchannel_deliveries (id, client_id, uri, sub, sid, created_at, next_attempt_at) \
             SELECT $1 || ' ' || c.client_id, c.client_id, c.backchannel_logout_uri, $2, $1, $3, $3 FROM clients c \
             WHERE c.backchannel_logout_uri IS NOT NULL \
             AND c.client_id IN (SELECT DISTINCT g.client_id FROM grants g WHERE g.sid = $1 AND g.user_id = $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(sid)
        .bind(user_id)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(revoked)
    }

    /// Revokes every grant a user gave a client and forgets the consent (the account page's "remove app").
    pub async fn revoke_app(&mut self, user_id: &str, client_id: &str, now: i64) -> Result<bool, StorageError> {
        let revoked = sqlx::query(
            "UPDATE grants SET revoked_at = $1 WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        let forgotten = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok(revoked + forgotten > 0)
    }

    pub async fn commit(self) -> Result<(), StorageError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Rolls back now, handing back SQLite's writer connection, which the caller's next grant call needs.
    pub async fn rollback(self) -> Result<(), StorageError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use crate::storage::Database;
    use crate::storage::contract_tests::{grant_with_refresh_token, rotation, sqlite};

    /// Runs `task` while a grant transaction holds SQLite's writer connection, checks that it waits for the
    /// commit, and returns its output.
    async fn waits_for_the_writer<T: Send + 'static>(
        db: &Database,
        task: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let writing = db.grants().begin().await.unwrap();
        let task = tokio::spawn(task);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished(), "it waits for the transaction writing before it");
        writing.commit().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn sqlite_write_transactions_take_turns() {
        let (db, _dir) = sqlite().await;
        let grants = db.clone();
        waits_for_the_writer(&db, async move { grants.grants().begin().await.map(drop) }).await.unwrap();
    }

    #[tokio::test]
    async fn sqlite_refresh_token_rotation_waits_for_the_write_turn() {
        let (db, _dir) = sqlite().await;
        grant_with_refresh_token(&db, "user").await;
        let grants = db.clone();
        let rotated =
            waits_for_the_writer(
                &db,
                async move { grants.grants().rotate_refresh_token(&rotation("rt", "rt2", 2)).await },
            );
        assert!(rotated.await.unwrap());
    }

    #[tokio::test]
    async fn sqlite_refresh_token_use_is_read_on_the_writer_connection() {
        let (db, _dir) = sqlite().await;
        grant_with_refresh_token(&db, "user").await;
        let grants = db.clone();
        let found = waits_for_the_writer(&db, async move { grants.grants().find_refresh_token_use("rt").await });
        assert!(found.await.unwrap().is_some());
    }
}
