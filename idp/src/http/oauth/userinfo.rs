//! The UserInfo endpoint (OIDC Core §5.3): the claims of the granted scopes for the token's user. The
//! token comes in the `Authorization: Bearer` header or, for POST, the `access_token` form field
//! (RFC 6750 §2.1, §2.2); never in the query string.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::params::FormParams;
use crate::domain::grants::introspection::active_access_token_with_user;
use crate::domain::scope::{self, Scopes};
use crate::error::{Error, ErrorCode};
use crate::http::extract::{HeadersAndBody, bearer_header, inactive_token};
use crate::state::AppState;

pub const PATH: &str = "/userinfo";

/// OIDC Core §5.1 standard claims, as far as the granted scopes allow.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

fn invalid_token(why: &'static str) -> Error {
    Error::oauth(ErrorCode::InvalidToken, why)
}

/// The bearer token of a request: the header, or the form body of a POST; exactly one of them.
fn bearer_token<'a>(headers: &'a HeaderMap, body: Option<&'a FormParams<'_>>) -> Result<&'a str, Error> {
    match (bearer_header(headers)?, body.and_then(|b| b.get("access_token"))) {
        (Some(_), Some(_)) => Err(Error::invalid_request("send the token once (RFC 6750 section 2)")),
        (Some(token), None) | (None, Some(token)) => Ok(token),
        // RFC 6750 §3.1: a request without credentials gets a bare challenge.
        (None, None) => Err(Error::Unauthenticated),
    }
}

async fn userinfo(state: &AppState, token: &str) -> Result<Json<UserInfo>, Error> {
    let ring = state.keys.current();
    let (claims, user) =
        active_access_token_with_user(&state.grant_context(&ring), token).await?.ok_or_else(inactive_token)?;
    let scopes = Scopes::parse(&claims.scope).map_err(Error::internal)?;
    if !claims.is_user_token() || !scopes.contains(scope::OPENID) {
        return Err(Error::oauth(ErrorCode::InsufficientScope, "the token carries no openid scope for a user"));
    }
    let user = user.ok_or_else(|| invalid_token("the token's user no longer exists"))?;
    let email = scopes.contains(scope::EMAIL);
    Ok(Json(UserInfo {
        sub: user.id.to_string(),
        name: if scopes.contains(scope::PROFILE) { user.name.map(|n| n.as_str().to_owned()) } else { None },
        email: email.then(|| user.email.as_str().to_owned()),
        email_verified: email.then_some(false),
    }))
}

/// The signed-in user's claims (OIDC Core §5.3), token in the Authorization header.
#[utoipa::path(get, path = "/userinfo", tag = "oidc", security(("bearer" = [])),
    responses(
        (status = 200, description = "Claims of the granted scopes", body = UserInfo),
        (status = 401, description = "invalid_token (WWW-Authenticate: Bearer)", body = crate::error::ErrorBody),
        (status = 403, description = "insufficient_scope", body = crate::error::ErrorBody),
    ))]
pub async fn get(State(state): State<AppState>, request: Request) -> Result<Json<UserInfo>, Error> {
    // The request itself rather than axum's `HeaderMap`, which clones every header.
    userinfo(&state, bearer_token(request.headers(), None)?).await
}

/// The same, with the token in the header or in the `access_token` form field (RFC 6750 §2.2).
#[utoipa::path(post, path = "/userinfo", tag = "oidc", security(("bearer" = [])),
    request_body(content_type = "application/x-www-form-urlencoded", description = "access_token (optional)"),
    responses(
        (status = 200, description = "Claims of the granted scopes", body = UserInfo),
        (status = 401, description = "invalid_token", body = crate::error::ErrorBody),
        (status = 403, description = "insufficient_scope", body = crate::error::ErrorBody),
    ))]
pub async fn post(
    State(state): State<AppState>,
    HeadersAndBody { headers, body }: HeadersAndBody,
) -> Result<Json<UserInfo>, Error> {
    let form = if body.is_empty() { None } else { Some(FormParams::from_body(&headers, &body)?) };
    userinfo(&state, bearer_token(&headers, form.as_ref())?).await
}
