//! Request facts the handlers need: a form POST's headers and body, a bearer token, the client's address and
//! user agent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};

use crate::domain::grants::introspection::active_access_token;
use crate::domain::sessions::client_ip;
use crate::domain::tokens::AccessTokenClaims;
use crate::error::{Error, ErrorCode};
use crate::state::AppState;

/// A request's headers and body, taken from it: what the back-channel endpoints read (token, introspection,
/// revocation, userinfo). axum's `HeaderMap` extractor clones every header of the request, about 800
/// instructions of a token request; these are moved out instead. The body is read as the `Bytes` extractor
/// reads it, under axum's body limit (which it finds in the request's extensions); a body it cannot read is
/// `invalid_request` (RFC 6749 §5.2), in JSON as every other refusal of these endpoints, where the `Bytes`
/// extractor would answer in plain text.
#[derive(Debug)]
pub struct HeadersAndBody {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for HeadersAndBody {
    type Rejection = Error;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = std::mem::take(request.headers_mut());
        let body = Bytes::from_request(request, state).await.map_err(unreadable_body)?;
        Ok(HeadersAndBody { headers, body })
    }
}

/// `invalid_request` for a body over the limit, or one that stopped before its end.
fn unreadable_body(rejection: BytesRejection) -> Error {
    tracing::debug!(error = %rejection.body_text(), "request body not read");
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::invalid_request("the request body is too large")
    } else {
        Error::invalid_request("the request body could not be read")
    }
}

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
        let forwarded = forwarded_for(&parts.headers);
        let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        Ok(ClientInfo { ip: client_ip(peer, forwarded.as_deref(), &state.config.trusted_proxies), user_agent })
    }
}

/// Every `X-Forwarded-For` line, in order, as one list (RFC 9110 §5.3): a proxy may add its own line after
/// the one the client sent, and reading only the first would take the client's word. `None` when there is
/// none. Bytes that are not text become U+FFFD, so the hop holding them does not parse: the walk from the
/// right stops there, keeping what the proxies after it wrote.
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let lines: Vec<_> =
        headers.get_all("x-forwarded-for").iter().map(|line| String::from_utf8_lossy(line.as_bytes())).collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn every_forwarded_for_line_is_read_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        headers.append("x-forwarded-for", "198.51.100.7, 10.0.0.2".parse().unwrap());
        let forwarded = forwarded_for(&headers);
        assert_eq!(forwarded.as_deref(), Some("203.0.113.9, 198.51.100.7, 10.0.0.2"));
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let peer = "10.0.0.1".parse().unwrap();
        let ip = client_ip(peer, forwarded.as_deref(), &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap(), "the proxy's line, not the client's first one");
    }

    #[test]
    fn forwarded_for_is_none_without_the_header() {
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }

    /// A client's line that is not text spoils its own hop only, not the proxies' after it.
    #[test]
    fn a_forwarded_for_line_that_is_not_text_leaves_the_proxies_hops() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"\xff").unwrap());
        headers.append("x-forwarded-for", "198.51.100.7".parse().unwrap());
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip("10.0.0.1".parse().unwrap(), forwarded_for(&headers).as_deref(), &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    /// A route that answers with the `content-type` it was given and the body's length.
    fn echo(limit: usize) -> Router {
        Router::new()
            .route(
                "/",
                post(|HeadersAndBody { headers, body }: HeadersAndBody| async move {
                    format!("{:?} {}", headers.get("content-type"), body.len())
                }),
            )
            .layer(DefaultBodyLimit::max(limit))
    }

    fn form(body: &'static str) -> Request {
        Request::post("/").header("content-type", "application/x-www-form-urlencoded").body(Body::from(body)).unwrap()
    }

    /// The status and the JSON body of `response`.
    async fn json(response: axum::response::Response) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn headers_and_body_reach_the_handler() {
        let response = echo(64).oneshot(form("grant_type=client_credentials")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(text, "Some(\"application/x-www-form-urlencoded\") 29");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_invalid_request() {
        let (status, body) = json(echo(8).oneshot(form("grant_type=client_credentials")).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], "the request body is too large");
    }

    #[tokio::test]
    async fn a_body_cut_off_before_its_end_is_refused_with_invalid_request() {
        let cut_off = futures_util::stream::iter([
            Ok(Bytes::from_static(b"grant_type=")),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the client went away")),
        ]);
        let request = Request::post("/").body(Body::from_stream(cut_off)).unwrap();
        let (status, body) = json(echo(64).oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error_description"], "the request body could not be read");
    }
}
