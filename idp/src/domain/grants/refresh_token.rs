//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! Every use returns a new refresh token and retires the old one. Presenting a retired token means two
//! parties hold the family: the whole grant is revoked, its newest refresh token and its access tokens
//! included. Tokens slide (`IDP_REFRESH_TOKEN_TTL` from each use) within the grant's absolute limit.

use super::issue::{self, GrantContext, SessionRef, TokenResponse};
use super::{narrow_scope, secs};
use crate::domain::clients::Client;
use crate::domain::scope;
use crate::domain::tokens;
use crate::error::{Error, ErrorCode};
use crate::storage::grants::{RefreshUse, Rotation};

fn invalid_grant(why: &'static str) -> Error {
    Error::oauth(ErrorCode::InvalidGrant, why)
}

pub async fn exchange(
    ctx: &GrantContext<'_>,
    client: &Client,
    refresh_token: &str,
    requested_scope: Option<&str>,
) -> Result<TokenResponse, Error> {
    let now = ctx.now_secs();
    let token_hash = tokens::hash_secret(refresh_token);
    let grants = ctx.db.grants();
    let Some(RefreshUse { record, user }) = grants.find_refresh_token_use(&token_hash).await? else {
        return Err(invalid_grant("the refresh token is invalid"));
    };
    let grant = record.grant;
    if grant.client_id != client.id.as_str() {
        return Err(invalid_grant("the refresh token was issued to another client"));
    }
    if !grant.is_live(ctx.now) {
        return Err(invalid_grant("the refresh token has been revoked or has expired"));
    }
    if record.rotated_at.is_some() {
        grants.revoke_grant(&grant.id, now).await?;
        tracing::warn!(client = %client.id, grant = %grant.id, "rotated refresh token presented again: grant revoked");
        return Err(invalid_grant("the refresh token was already used; every token of this grant is revoked"));
    }
    if record.expires_at <= now {
        return Err(invalid_grant("the refresh token has expired"));
    }
    let scope = narrow_scope(requested_scope, &grant.scope)?;
    let user = user.ok_or_else(|| invalid_grant("the user no longer exists"))?;

    let session = SessionRef { sid: &grant.sid, auth_time: grant.auth_time };
    let access = issue::user_access_token(ctx, &grant, &scope)?;
    let new_refresh = tokens::new_secret();
    // OIDC Core §12.2: a new ID token for the same subject, without a nonce. Signed before the rotation, so
    // that nothing can fail between spending the old refresh token and answering.
    let id_token = if scope.contains(scope::OPENID) {
        Some(issue::id_token(ctx, &user, client, &scope, session, None, &access.jwt)?)
    } else {
        None
    };

    let rotation = Rotation {
        old_hash: &token_hash,
        new_hash: &tokens::hash_secret(&new_refresh),
        grant_id: &grant.id,
        expires_at: (now + secs(ctx.config.refresh_token_ttl)).min(grant.expires_at),
        now,
    };
    if !grants.rotate_refresh_token(&rotation).await? {
        // Another request rotated it first: the same token was used twice.
        grants.revoke_grant(&grant.id, now).await?;
        tracing::warn!(client = %client.id, grant = %grant.id, "concurrent refresh token reuse: grant revoked");
        return Err(invalid_grant("the refresh token was already used; every token of this grant is revoked"));
    }
    tracing::debug!(client = %client.id, grant = %grant.id, "refresh token rotated");
    Ok(issue::response(&access, Some(new_refresh), id_token))
}
