//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.5, OIDC Core §3.1.3).
//!
//! Everything that can be checked or computed is done before the write (reading the code, the client,
//! redirect URI and PKCE checks, loading the user, signing the tokens), so that the write's transaction holds
//! only the conditional `UPDATE` that spends the code and the inserts of the new grant; concurrent
//! redemptions share one such transaction (`storage::codes`).
//!
//! A code is redeemed once. A second presentation answers `invalid_grant` and revokes the grant made from
//! the first one (RFC 6749 §4.1.2: "SHOULD revoke (when possible) all tokens previously issued based on that
//! code"). A failed attempt spends the code as well.

use super::issue::{self, GrantContext, SessionRef, TokenResponse};
use super::{Grant, pkce, secs};
use crate::domain::clients::{Client, GrantType};
use crate::domain::scope::{self, Scopes};
use crate::domain::tokens;
use crate::error::{Error, ErrorCode};
use crate::storage::grants::{CodeRecord, CodeUse};

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

fn check(code: &CodeRecord, client: &Client, request: &CodeRequest<'_>, now: i64) -> Result<(), Error> {
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
}

/// The answer to a code that was already used: revoke what its first use made.
async fn reused(ctx: &GrantContext<'_>, client: &Client, code_hash: &str) -> Result<TokenResponse, Error> {
    let grants = ctx.db.grants();
    if let Some(previous) = grants.grant_of_redeemed_code(code_hash).await? {
        grants.revoke_grant(&previous, ctx.now_secs()).await?;
        tracing::warn!(client = %client.id, "authorization code used twice: the grant made from it is revoked");
    }
    Err(invalid_grant("the authorization code is invalid, expired or already used"))
}

pub async fn exchange(
    ctx: &GrantContext<'_>,
    client: &Client,
    request: CodeRequest<'_>,
) -> Result<TokenResponse, Error> {
    let now = ctx.now_secs();
    let code_hash = tokens::hash_secret(request.code);
    let grants = ctx.db.grants();
    let Some(CodeUse { code, redeemed, user }) = grants.find_code_use(&code_hash).await? else {
        return Err(invalid_grant("the authorization code is invalid, expired or already used"));
    };
    if redeemed {
        return reused(ctx, client, &code_hash).await;
    }
    let checked = check(&code, client, &request, now)
        .and_then(|()| user.ok_or_else(|| invalid_grant("the user no longer exists")));
    let user = match checked {
        Ok(user) => user,
        Err(e) => {
            // Spend the code: a failed attempt cannot be retried with other values.
            grants.burn_code(&code_hash, now).await?;
            return Err(e);
        }
    };

    let scope = Scopes::parse(&code.scope).map_err(Error::internal)?;
    let grant = Grant {
        id: tokens::new_ordered_id(),
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
    let access = issue::user_access_token(ctx, &grant, &scope)?;
    let id_token = if scope.contains(scope::OPENID) {
        Some(issue::id_token(ctx, &user, client, &scope, session, code.nonce.as_deref(), &access.jwt)?)
    } else {
        None
    };
    // Refresh tokens only for offline access (OIDC Core §11) and clients allowed the grant.
    let refresh_token = (scope.contains(scope::OFFLINE_ACCESS) && client.allows_grant(GrantType::RefreshToken))
        .then(tokens::new_secret);

    let refresh_expires_at = (now + secs(ctx.config.refresh_token_ttl)).min(grant.expires_at);
    let refresh_hash = refresh_token.as_deref().map(tokens::hash_secret);
    let refresh_row = refresh_hash.as_deref().map(|hash| (hash, refresh_expires_at));
    if !grants.redeem_code(&code_hash, &grant, refresh_row).await? {
        // Another redemption of the same code won the race: this one is the reuse.
        return reused(ctx, client, &code_hash).await;
    }
    tracing::debug!(client = %client.id, grant = %grant.id, "authorization code exchanged");
    Ok(issue::response(&access, refresh_token, id_token))
}
