//! Request facts the handlers need: the client's address and user agent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;

use crate::domain::grants::introspection::active_access_token;
use crate::domain::sessions::client_ip;
use crate::domain::tokens::AccessTokenClaims;
use crate::error::{Error, ErrorCode};
use crate::state::AppState;

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1); `None` without the header. Another
/// scheme, or a header without a token, is `invalid_token`.
pub fn bearer_header(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(AUTHORIZATION) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| Some(token.trim()))
        .ok_or_else(|| Error::oauth(ErrorCode::InvalidToken, "the Authorization header is not a Bearer token"))
}

/// The claims of an active access token of this issuer, or `invalid_token` (RFC 6750 §3.1).
pub async fn active_token(state: &AppState, token: &str) -> Result<AccessTokenClaims, Error> {
    let ring = state.keys.current();
    active_access_token(&state.grant_context(&ring), token).await?.ok_or_else(inactive_token)
}

/// `invalid_token` (RFC 6750 §3.1) for a bearer token that is not an active access token of this issuer.
pub fn inactive_token() -> Error {
    Error::oauth(ErrorCode::InvalidToken, "the access token is invalid, expired or revoked")
}

/// Where a request comes from: the peer address (or, behind a trusted proxy, the forwarded client address)
/// and the `User-Agent`.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Without a socket (router tests driven by `oneshot`) the request is local.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ConnectInfo(addr)| addr.ip());
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        Ok(ClientInfo { ip: client_ip(peer, forwarded, &state.config.trusted_proxies), user_agent })
    }
}
