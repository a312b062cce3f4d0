//! Authorization codes, grants (token families), refresh and access tokens, revocations and consents.
//!
//! Redemptions run in a [`GrantTx`]: the code (or refresh token) is marked used by a conditional `UPDATE`
//! in the same transaction that writes the new tokens, so of two concurrent redemptions exactly one wins,
//! and the loser sees the winner's committed grant and can revoke it (RFC 9700 §4.14.2, ASVS 10.4.2).

use sqlx::{Any, AnyPool, Transaction};

use super::StorageError;
use crate::domain::grants::Grant;
use crate::domain::scope::Scopes;

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

/// A refresh token as stored, with its grant.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub grant: Grant,
}

type CodeRow = (String, String, String, String, Option<String>, Option<String>, i64, String, i64);

macro_rules! grant_columns {
    () => {
        "g.id, g.client_id, g.user_id, g.scope, g.sid, g.auth_time, g.created_at, g.expires_at, g.revoked_at"
    };
}

#[derive(sqlx::FromRow)]
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

#[derive(sqlx::FromRow)]
struct RefreshRow {
    token_expires_at: i64,
    rotated_at: Option<i64>,
    #[sqlx(flatten)]
    grant: GrantRow,
}

pub struct Grants<'a> {
    pool: &'a AnyPool,
}

impl<'a> Grants<'a> {
    pub(super) fn new(pool: &'a AnyPool) -> Self {
        Grants { pool }
    }

    pub async fn begin(&self) -> Result<GrantTx, StorageError> {
        Ok(GrantTx { tx: self.pool.begin().await? })
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
        .execute(self.pool)
        .await?;
        Ok(())
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
            .execute(self.pool)
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
        row.map(|row| {
            Ok(RefreshRecord {
                expires_at: row.token_expires_at,
                rotated_at: row.rotated_at,
                grant: row.grant.try_into()?,
            })
        })
        .transpose()
    }

    /// Whether a user access token is still active: known, its grant live, and not revoked by itself.
    /// `None` when the `jti` belongs to no grant (a client-credentials token, or a foreign one).
    pub async fn user_access_token_active(&self, jti: &str) -> Result<Option<bool>, StorageError> {
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT g.revoked_at, (SELECT COUNT(*) FROM revoked_access_tokens v WHERE v.jti = a.jti) \
             FROM access_tokens a JOIN grants g ON g.id = a.grant_id WHERE a.jti = $1",
        )
        .bind(jti)
        .fetch_optional(self.pool)
        .await?;
        Ok(row.map(|(grant_revoked_at, revoked_alone)| grant_revoked_at.is_none() && revoked_alone == 0))
    }

    pub async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StorageError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT jti FROM revoked_access_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Revokes one access token until it would have expired anyway (RFC 7009 §2.1).
    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StorageError> {
        sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(self.pool)
            .await?;
        Ok(())
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
        .execute(self.pool)
        .await?;
        Ok(())
    }
}

/// A transaction over the grant tables; dropped without [`GrantTx::commit`] it rolls back.
pub struct GrantTx {
    tx: Transaction<'static, Any>,
}

impl GrantTx {
    /// Marks a code redeemed by `grant_id`, if it was not already; returns it then.
    pub async fn redeem_code(
        &mut self,
        code_hash: &str,
        grant_id: &str,
        now: i64,
    ) -> Result<Option<CodeRecord>, StorageError> {
        let row: Option<CodeRow> = sqlx::query_as(
            "UPDATE authorization_codes SET redeemed_at = $1, grant_id = $2 WHERE code_hash = $3 AND redeemed_at IS NULL \
             RETURNING client_id, user_id, redirect_uri, scope, pkce, nonce, auth_time, sid, expires_at",
        )
        .bind(now)
        .bind(grant_id)
        .bind(code_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|(client_id, user_id, redirect_uri, scope, pkce, nonce, auth_time, sid, expires_at)| CodeRecord {
            client_id,
            user_id,
            redirect_uri,
            scope,
            pkce,
            nonce,
            auth_time,
            sid,
            expires_at,
        }))
    }

    /// Marks a refresh token used; false when it was already rotated (a concurrent or replayed use).
    pub async fn rotate_refresh_token(&mut self, token_hash: &str, now: i64) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2 AND rotated_at IS NULL")
                .bind(now)
                .bind(token_hash)
                .execute(&mut *self.tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }

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

    pub async fn insert_access_token(
        &mut self,
        jti: &str,
        grant_id: &str,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        sqlx::query("INSERT INTO access_tokens (jti, grant_id, expires_at) VALUES ($1, $2, $3)")
            .bind(jti)
            .bind(grant_id)
            .bind(expires_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StorageError> {
        self.tx.commit().await?;
        Ok(())
    }
}
