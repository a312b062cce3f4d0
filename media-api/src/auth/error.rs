//! The one error of bearer authentication and its RFC 6750 §3 responses.
//!
//! The codes are the RFC's; the descriptions are fixed texts chosen here, so nothing internal (a parser's
//! message, a key id, the JWKS address) ever reaches the client. Causes are logged at debug level where they
//! happen.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a token was refused (RFC 6750 §3.1 `invalid_token`); the `Display` text is the
/// `error_description` sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    #[error("the access token is not a well-formed JWS")]
    Malformed,
    #[error("the token is not a JWT access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token names no signing key, or a key the issuer does not publish")]
    UnknownKey,
    #[error("the token's algorithm is not its key's algorithm")]
    AlgorithmMismatch,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token lacks a required claim or a claim is malformed")]
    BadClaims,
    #[error("the token was not issued by the expected issuer")]
    WrongIssuer,
    #[error("the token is not meant for this API")]
    WrongAudience,
    #[error("the access token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// A request that bearer authentication refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer credentials at all: 401 with a bare `Bearer` challenge and no error code (RFC 6750 §3.1:
    /// "the resource server SHOULD NOT include an error code").
    #[error("bearer authentication required")]
    MissingCredentials,
    /// A malformed request, such as two `Authorization` headers or an empty token: 400 (RFC 6750 §3.1).
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// The token is expired, malformed or otherwise not acceptable: 401 (RFC 6750 §3.1).
    #[error("invalid_token: {0}")]
    InvalidToken(InvalidToken),
    /// The token is valid but lacks the scope the resource needs: 403 with the `scope` (RFC 6750 §3.1).
    #[error("insufficient_scope: {scope}")]
    InsufficientScope { scope: String },
    /// The token names a key the issuer's JWKS could not be fetched to find: 503, try again later. A 401
    /// would be wrong, as the token may well be valid.
    #[error("temporarily_unavailable")]
    Unavailable,
}

impl From<InvalidToken> for AuthError {
    fn from(reason: InvalidToken) -> Self {
        AuthError::InvalidToken(reason)
    }
}

/// The JSON body beside the challenge, in the shape of RFC 6749 §5.2.
#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: String,
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingCredentials | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 §3.1 error code; `None` for the bare challenge.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingCredentials => None,
            AuthError::InvalidRequest(_) => Some("invalid_request"),
            AuthError::InvalidToken(_) => Some("invalid_token"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthError::Unavailable => Some("temporarily_unavailable"),
        }
    }

    fn description(&self) -> String {
        match self {
            AuthError::MissingCredentials => String::new(),
            AuthError::InvalidRequest(what) => (*what).to_owned(),
            AuthError::InvalidToken(reason) => reason.to_string(),
            AuthError::InsufficientScope { .. } => "the access token lacks the scope this request needs".to_owned(),
            AuthError::Unavailable => "the issuer's keys cannot be fetched; try again later".to_owned(),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3); none for 503.
    pub fn challenge(&self) -> Option<String> {
        let code = match self {
            AuthError::MissingCredentials => return Some("Bearer".to_owned()),
            AuthError::Unavailable => return None,
            _ => self.code()?,
        };
        let mut challenge = format!("Bearer error=\"{code}\", error_description=\"{}\"", quotable(&self.description()));
        if let AuthError::InsufficientScope { scope } = self {
            challenge.push_str(&format!(", scope=\"{}\"", scope_tokens(scope)));
        }
        Some(challenge)
    }
}

/// RFC 6750 §3: `error_description` is printable ASCII without `"` and `\`.
fn quotable(text: &str) -> String {
    text.chars().map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { ' ' }).collect()
}

/// RFC 6749 §3.3 scope-token characters (`%x21 / %x23-5B / %x5D-7E`) and the spaces between tokens.
fn scope_tokens(scope: &str) -> String {
    scope.chars().filter(|&c| c == ' ' || (('!'..='~').contains(&c) && c != '"' && c != '\\')).collect()
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = match self.code() {
            Some(error) => {
                let body = ErrorBody { error, error_description: self.description() };
                (self.status(), Json(body)).into_response()
            }
            None => self.status().into_response(),
        };
        let headers = response.headers_mut();
        if let Some(value) = self.challenge().and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if matches!(self, AuthError::Unavailable) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge_of(error: AuthError) -> (StatusCode, Option<String>) {
        let response = error.into_response();
        let challenge = response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
        (response.status(), challenge)
    }

    #[test]
    fn missing_credentials_get_a_bare_bearer_challenge() {
        assert_eq!(challenge_of(AuthError::MissingCredentials), (StatusCode::UNAUTHORIZED, Some("Bearer".into())));
    }

    #[test]
    fn invalid_token_is_401_with_code_and_description() {
        let (status, challenge) = challenge_of(InvalidToken::Expired.into());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.unwrap(),
            "Bearer error=\"invalid_token\", error_description=\"the access token expired\""
        );
    }

    #[test]
    fn insufficient_scope_is_403_and_names_the_scope() {
        let (status, challenge) = challenge_of(AuthError::InsufficientScope { scope: "media.write".into() });
        assert_eq!(status, StatusCode::FORBIDDEN);
        let challenge = challenge.unwrap();
        assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
        assert!(challenge.ends_with("scope=\"media.write\""), "{challenge}");
    }

    #[test]
    fn scope_in_challenge_cannot_break_out_of_its_quotes() {
        let (_, challenge) = challenge_of(AuthError::InsufficientScope { scope: "a\"b\\c\r\nd".into() });
        assert!(challenge.unwrap().ends_with("scope=\"abcd\""));
    }

    #[test]
    fn unavailable_is_503_with_retry_after_and_no_challenge() {
        let response = AuthError::Unavailable.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(header::RETRY_AFTER).is_some());
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
