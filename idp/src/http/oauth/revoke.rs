//! Token revocation (RFC 7009). The caller authenticates as a client and may revoke only its own tokens.
//! Revoking a refresh token revokes its whole grant, access tokens included (§2.1); revoking an access
//! token denies that token until it expires. Unknown tokens answer 200 too (§2.2).

use axum::extract::State;
use axum::http::StatusCode;

use super::client_auth;
use super::params::FormParams;
use crate::domain::grants::introspection::verify_access_token;
use crate::domain::grants::issue::GrantContext;
use crate::domain::tokens;
use crate::error::Error;
use crate::http::extract::HeadersAndBody;
use crate::state::AppState;

pub const PATH: &str = "/revoke";

/// Revokes a token (RFC 7009 §2.1).
#[utoipa::path(post, path = "/revoke", tag = "oauth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "token, token_type_hint (RFC 7009 §2.1)"),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009 §2.2)"),
        (status = 401, description = "invalid_client", body = crate::error::ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    HeadersAndBody { headers, body }: HeadersAndBody,
) -> Result<StatusCode, Error> {
    let params = FormParams::from_body(&headers, &body)?;
    let client = client_auth::authenticate(&state, &headers, &params).await?;
    let token = params.require("token")?;
    let now = state.clock.now();
    let grants = state.db.grants();

    if let Some(record) = grants.find_refresh_token(&tokens::hash_secret(token)).await? {
        if record.grant.client_id == client.id.as_str() {
            grants.revoke_grant(&record.grant.id, now.unix_timestamp()).await?;
            tracing::debug!(client = %client.id, grant = %record.grant.id, "refresh token revoked with its grant");
        }
        return Ok(StatusCode::OK);
    }
    let ring = state.keys.current();
    let ctx = GrantContext { now, ..state.grant_context(&ring) };
    if let Some(claims) = verify_access_token(&ctx, token)
        && claims.client_id == client.id.as_str()
    {
        grants.revoke_access_token(&claims.jti, claims.exp).await?;
        tracing::debug!(client = %client.id, "access token revoked");
    }
    Ok(StatusCode::OK)
}
