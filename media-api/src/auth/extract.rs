//! The `Authorization: Bearer` extractor (RFC 6750 §2.1).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use time::OffsetDateTime;

use super::error::{AuthError, InvalidToken};
use super::verify::{Principal, Validator};

/// A request carrying a valid access token; routes take it as an argument and check scopes on it. The
/// router state must give an `Arc<Validator>` (`FromRef`). Tokens in the query string or the form body
/// (RFC 6750 §2.2–2.3) are not read.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<Validator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let validator = Arc::<Validator>::from_ref(state);
        let token = bearer_token(&parts.headers)?;
        validator.validate(token, OffsetDateTime::now_utc()).await.map(Authenticated)
    }
}

/// The token of the request's one `Authorization: Bearer` header.
///
/// - No `Authorization` header, or one of another scheme: no bearer credentials, a bare challenge.
/// - More than one header, or `Bearer` without a token: `invalid_request` (RFC 6750 §3.1).
/// - A token with characters outside `b64token` (RFC 6750 §2.1): `invalid_token`.
///
/// The scheme is case-insensitive (RFC 9110 §11.1).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(AuthError::MissingCredentials) };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest("more than one Authorization header"));
    }
    let value = value.to_str().map_err(|_| InvalidToken::Malformed)?.trim_matches(' ');
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingCredentials);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::InvalidRequest("the Bearer credentials hold no token"));
    }
    if !is_b64token(token) {
        return Err(InvalidToken::Malformed.into());
    }
    Ok(token)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_token_is_read_with_any_case_of_the_scheme() {
        for value in ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER   abc.def.ghi"] {
            assert_eq!(bearer_token(&headers(&[value])), Ok("abc.def.ghi"), "{value}");
        }
    }

    #[test]
    fn refused_authorization_headers() {
        let cases: [(&[&str], AuthError, &str); 6] = [
            (&[], AuthError::MissingCredentials, "no header: bare challenge"),
            (&["Basic dXNlcjpwYXNz"], AuthError::MissingCredentials, "another scheme is not bearer credentials"),
            (
                &["Bearer a.b.c", "Bearer d.e.f"],
                AuthError::InvalidRequest("more than one Authorization header"),
                "two headers",
            ),
            (&["Bearer"], AuthError::InvalidRequest("the Bearer credentials hold no token"), "no token"),
            (&["Bearer a.b c"], InvalidToken::Malformed.into(), "a space inside the token"),
            (&["Bearer a\"b"], InvalidToken::Malformed.into(), "a character outside b64token"),
        ];
        for (values, expected, reason) in cases {
            assert_eq!(bearer_token(&headers(values)), Err(expected), "{reason}");
        }
    }
}
