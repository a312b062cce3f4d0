//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.5, OIDC Core §3.1.3).
//!
//! A code is redeemed once: the redemption marks it used in the transaction that writes the grant and its
//! tokens. A second presentation answers `invalid_grant` and revokes the grant made from the first one
//! (RFC 6749 §4.1.2: "SHOULD revoke (when possible) all tokens previously issued based on that code").

use super::issue::{self, GrantContext, SessionRef, TokenResponse};
use super::{Grant, pkce, secs};
use crate::domain::clients::{Client, GrantType};
use crate::domain::scope::{self, Scopes};
use crate::domain::tokens;
use crate::domain::users::UserId;
use crate::error::{Error, ErrorCode};

/// The token request of this grant.
#[derive(Debug)]
pub struct CodeRequest<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

fn invalid_grant(why: &'static str) -> Error {
    Error::oauth(ErrorCode::InvalidGrant, why)
}

pub async fn exchange(
    ctx: &GrantContext<'_>,
    client: &Client,
    request: CodeRequest<'_>,
) -> Result<TokenResponse, Error> {
    let now = ctx.now_secs();
    let code_hash = tokens::hash_secret(request.code);
    let grant_id = tokens::new_id();
    let grants = ctx.db.grants();
    let mut tx = grants.begin().await?;

    let Some(code) = tx.redeem_code(&code_hash, &grant_id, now).await? else {
        drop(tx);
        if let Some(previous) = grants.grant_of_redeemed_code(&code_hash).await? {
            grants.revoke_grant(&previous, now).await?;
            tracing::warn!(client = %client.id, "authorization code used twice: the grant made from it is revoked");
        }
        return Err(invalid_grant("the authorization code is invalid, expired or already used"));
    };

    // From here on the code is spent whatever the outcome: a failed attempt cannot be retried.
    let checked = (|| {
        if code.expires_at <= now {
            return Err(invalid_grant("the authorization code has expired"));
        }
        if code.client_id != client.id.as_str() {
            return Err(invalid_grant("the authorization code was issued to another client"));
        }
        if request.redirect_uri != Some(code.redirect_uri.as_str()) {
            return Err(invalid_grant("redirect_uri differs from the authorization request"));
        }
        pkce::verify(code.pkce.as_deref(), request.code_verifier)
    })();
    if let Err(e) = checked {
        tx.commit().await?;
        return Err(e);
    }

    let user_id = UserId::parse(&code.user_id).ok_or_else(|| invalid_grant("unknown user"))?;
    let Some(user) = ctx.db.users().find(user_id).await? else {
        tx.commit().await?;
        return Err(invalid_grant("the user no longer exists"));
    };
    let scope = Scopes::parse(&code.scope).map_err(Error::internal)?;
    let grant = Grant {
        id: grant_id,
        client_id: client.id.as_str().to_owned(),
        user_id: code.user_id.clone(),
        scope: scope.clone(),
        sid: code.sid.clone(),
        auth_time: code.auth_time,
        created_at: now,
        expires_at: now + secs(ctx.config.refresh_token_absolute_ttl),
        revoked_at: None,
    };
    let session = SessionRef { sid: &grant.sid, auth_time: grant.auth_time };
    let access = issue::access_token(ctx, &grant.user_id, &grant.client_id, &scope, Some(session))?;
    tx.insert_grant(&grant).await?;
    tx.insert_access_token(&access.claims.jti, &grant.id, access.claims.exp).await?;

    // Refresh tokens only for offline access (OIDC Core §11) and clients allowed the grant.
    let refresh_token = if scope.contains(scope::OFFLINE_ACCESS) && client.allows_grant(GrantType::RefreshToken) {
        let token = tokens::new_secret();
        let expires_at = (now + secs(ctx.config.refresh_token_ttl)).min(grant.expires_at);
        tx.insert_refresh_token(&tokens::hash_secret(&token), &grant.id, now, expires_at).await?;
        Some(token)
    } else {
        None
    };
    tx.commit().await?;

    let id_token = if scope.contains(scope::OPENID) {
        Some(issue::id_token(ctx, &user, &grant.client_id, &scope, session, code.nonce.as_deref(), &access.jwt)?)
    } else {
        None
    };
    tracing::debug!(client = %client.id, grant = %grant.id, "authorization code exchanged");
    Ok(issue::response(&access, refresh_token, id_token))
}
