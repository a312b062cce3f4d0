//! Who calls the account APIs: a signed-in browser (session cookie) or a bearer token with the right scope.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tower_sessions::Session;

use crate::domain::scope::Scopes;
use crate::domain::tokens::AccessTokenClaims;
use crate::error::{Error, ErrorCode};
use crate::http::extract::{active_token, bearer_header};
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
    match bearer_header(&parts.headers)? {
        Some(token) => Ok(Some(active_token(state, token).await?)),
        None => Ok(None),
    }
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
        match session::current(&session).await? {
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
