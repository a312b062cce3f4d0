//! Token introspection (RFC 7662). The caller authenticates as a confidential client. It may introspect
//! access tokens issued to any client (a resource server introspects its callers' tokens), and refresh
//! tokens issued to itself; an inactive or unknown token, another issuer's, or another client's refresh
//! token answers exactly `{"active": false}` (§2.2).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::client_auth;
use super::params::FormParams;
use crate::domain::grants::introspection::{active_access_token, active_refresh_token};
use crate::domain::tokens::AccessTokenClaims;
use crate::error::{Error, ErrorCode};
use crate::http::extract::HeadersAndBody;
use crate::state::AppState;
use crate::storage::grants::RefreshRecord;

pub const PATH: &str = "/introspect";

/// RFC 7662 §2.2. Every member but `active` is absent for an inactive token.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// Describes a token (RFC 7662 §2).
#[utoipa::path(post, path = "/introspect", tag = "oauth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "token, token_type_hint (RFC 7662 §2.1)"),
    responses(
        (status = 200, description = "The token's state (RFC 7662 §2.2)", body = Introspection),
        (status = 401, description = "invalid_client", body = crate::error::ErrorBody),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    HeadersAndBody { headers, body }: HeadersAndBody,
) -> Result<Json<Introspection>, Error> {
    let params = FormParams::from_body(&headers, &body)?;
    let caller = client_auth::authenticate(&state, &headers, &params).await?;
    // RFC 7662 §2.1: the endpoint must not let anyone scan tokens; a public client proves nothing.
    if caller.is_public() {
        return Err(Error::oauth(ErrorCode::InvalidClient, "introspection needs a confidential client"));
    }
    let token = params.require("token")?;
    let ring = state.keys.current();
    let ctx = state.grant_context(&ring);

    // RFC 7662 §2.1: the hint only decides which kind is searched first.
    let kinds = if params.get("token_type_hint") == Some("refresh_token") {
        [Kind::Refresh, Kind::Access]
    } else {
        [Kind::Access, Kind::Refresh]
    };
    for kind in kinds {
        let found = match kind {
            Kind::Access => active_access_token(&ctx, token).await?.map(from_access),
            // A refresh token is only ever held by its own client (no resource server receives one), so it
            // is described to that client alone; to any other it is as unknown (RFC 7662 §4).
            Kind::Refresh => active_refresh_token(&ctx, token)
                .await?
                .filter(|r| r.grant.client_id == caller.id.as_str())
                .map(|r| from_refresh(r, state.config.issuer_id().to_owned())),
        };
        if let Some(introspection) = found {
            return Ok(Json(introspection));
        }
    }
    Ok(Json(Introspection::default()))
}

enum Kind {
    Access,
    Refresh,
}

fn from_access(claims: AccessTokenClaims) -> Introspection {
    Introspection {
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        sub: Some(claims.sub),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        iss: Some(claims.iss),
        aud: Some(claims.aud),
        jti: Some(claims.jti),
        token_type: Some("Bearer"),
        sid: claims.sid,
        auth_time: claims.auth_time,
    }
}

fn from_refresh(record: RefreshRecord, issuer: String) -> Introspection {
    let grant = record.grant;
    Introspection {
        active: true,
        scope: Some(grant.scope.to_string()),
        client_id: Some(grant.client_id),
        sub: Some(grant.user_id),
        exp: Some(record.expires_at),
        iss: Some(issuer),
        token_type: Some("refresh_token"),
        sid: Some(grant.sid),
        auth_time: Some(grant.auth_time),
        ..Introspection::default()
    }
}
