//! Who calls the account APIs: a signed-in browser (session cookie) or a bearer token with the right scope.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tower_sessions::Session;

use crate::domain::grants::introspection::active_access_token;
use crate::domain::scope::Scopes;
use crate::domain::tokens::AccessTokenClaims;
use crate::error::{Error, ErrorCode};
use crate::http::session;
use crate::state::AppState;

pub const ACCOUNT_SCOPE: &str = "account";
pub const ADMIN_SCOPE: &str = "admin";

/// The person an `/api/account` request acts for, and the session it comes from (`sid`), if any.
#[derive(Debug, Clone)]
pub struct AccountCaller {
    pub user_id: String,
    pub sid: Option<String>,
}

/// A back-office service allowed to manage any account (`/api/admin`).
#[derive(Debug, Clone)]
pub struct AdminCaller {
    pub client_id: String,
}

async fn bearer(parts: &Parts, state: &AppState) -> Result<Option<AccessTokenClaims>, Error> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else { return Ok(None) };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Error::oauth(ErrorCode::InvalidToken, "the Authorization header is not a Bearer token"))?;
    let ring = state.keys.current();
    let ctx = state.grant_context(&ring);
    let claims = active_access_token(&ctx, token)
        .await?
        .ok_or_else(|| Error::oauth(ErrorCode::InvalidToken, "the access token is invalid, expired or revoked"))?;
    Ok(Some(claims))
}

fn has_scope(claims: &AccessTokenClaims, scope: &str) -> bool {
    Scopes::parse(&claims.scope).is_ok_and(|s| s.contains(scope))
}

impl FromRequestParts<AppState> for AccountCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(claims) = bearer(parts, state).await? {
            if !claims.is_user_token() || !has_scope(&claims, ACCOUNT_SCOPE) {
                return Err(Error::oauth(ErrorCode::InsufficientScope, "a user token with scope account is required"));
            }
            return Ok(AccountCaller { user_id: claims.sub, sid: claims.sid });
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::Internal(anyhow::anyhow!("the session layer is missing on the account API")))?;
        match session::current(&session).await.map_err(|e| Error::Unavailable(e.into()))? {
            Some(login) => Ok(AccountCaller { user_id: login.user_id, sid: Some(login.sid) }),
            // RFC 6750 §3.1: no credentials at all gets a bare Bearer challenge.
            None => Err(Error::Unauthenticated),
        }
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let claims = bearer(parts, state).await?.ok_or(Error::Unauthenticated)?;
        // Administration is for services (client credentials), never for a token a person consented to.
        if claims.is_user_token() || !has_scope(&claims, ADMIN_SCOPE) {
            return Err(Error::oauth(ErrorCode::InsufficientScope, "a client token with scope admin is required"));
        }
        Ok(AdminCaller { client_id: claims.client_id })
    }
}
