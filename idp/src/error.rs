//! The crate's error type: every failure a JSON endpoint can meet, turned into an HTTP response in one
//! place. The `error` member is always an RFC error code (RFC 6749 §5.2, RFC 6750 §3.1, OIDC Core §3.1.2.6);
//! internal details are logged, never sent. (HTML pages render their own messages; see `http::pages`.)

use std::fmt;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::keys::KeyError;
use crate::storage::StorageError;
use crate::storage::keystore::KeyStoreError;

/// The error codes of the OAuth 2.0 and OpenID Connect specifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    UnsupportedResponseType,
    LoginRequired,
    ConsentRequired,
    InvalidToken,
    InsufficientScope,
    RequestNotSupported,
    RequestUriNotSupported,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seconds a client is asked to wait (`Retry-After`, RFC 9110 §10.2.3) when a dependency is down: on a
/// JSON error and on an HTML page alike.
pub const RETRY_AFTER: HeaderValue = HeaderValue::from_static("5");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A protocol error with its RFC code and a description safe to show the client.
    #[error("{code}: {description}")]
    OAuth { code: ErrorCode, description: String },
    /// No credentials at all on a bearer-protected resource: a bare challenge (RFC 6750 §3.1, no error code).
    #[error("authentication required")]
    Unauthenticated,
    #[error("not found")]
    NotFound,
    /// A unique value is already taken (the field is named).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A dependency (the database) is down; the client may retry (`temporarily_unavailable`).
    #[error("service unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure (`server_error`).
    #[error("internal error: {0}")]
    Internal(#[source] anyhow::Error),
}

/// `text` as an `error_description` may hold it (RFC 6749 §4.1.2.1, §5.2): printable ASCII without '"'
/// and '\\'; any other character becomes a space.
pub fn error_description(text: &str) -> String {
    text.chars().map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { ' ' }).collect()
}

/// The JSON error body (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// An RFC 6749 §5.2 / RFC 6750 §3.1 error code.
    #[schema(example = "invalid_request")]
    pub error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl Error {
    pub fn oauth(code: ErrorCode, description: impl Into<String>) -> Error {
        Error::OAuth { code, description: error_description(&description.into()) }
    }

    pub fn invalid_request(description: impl Into<String>) -> Error {
        Error::oauth(ErrorCode::InvalidRequest, description)
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Error {
        Error::Internal(e.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::OAuth { code, .. } => code.as_str(),
            Error::Unauthenticated => "unauthenticated",
            Error::NotFound => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unavailable(_) => "temporarily_unavailable",
            Error::Internal(_) => "server_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::OAuth { code: ErrorCode::InvalidClient | ErrorCode::InvalidToken, .. } => StatusCode::UNAUTHORIZED,
            Error::OAuth { code: ErrorCode::InsufficientScope, .. } => StatusCode::FORBIDDEN,
            Error::OAuth { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs what the response will not say: the cause of an unavailable or internal error.
    pub fn log(&self) {
        match self {
            Error::Unavailable(e) => tracing::warn!(error = format!("{e:#}"), "dependency unavailable"),
            Error::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            Error::OAuth { code, description } => tracing::debug!(%code, description, "request refused"),
            _ => {}
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(field) => Error::Conflict(field),
            e if e.is_unavailable() => Error::Unavailable(e.into()),
            e => Error::Internal(e.into()),
        }
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Internal(e.into())
    }
}

impl From<KeyStoreError> for Error {
    fn from(e: KeyStoreError) -> Self {
        Error::Internal(e.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        if matches!(self, Error::Unauthenticated) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"idp\""))],
            )
                .into_response();
        }
        let description = match &self {
            Error::OAuth { description, .. } if !description.is_empty() => Some(description.clone()),
            Error::Conflict(_) => Some(self.to_string()),
            _ => None,
        };
        let mut response =
            (self.status(), Json(ErrorBody { error: self.code(), error_description: description })).into_response();
        let headers = response.headers_mut();
        match &self {
            // RFC 6749 §5.2: a 401 for client authentication names the scheme.
            Error::OAuth { code: ErrorCode::InvalidClient, .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"idp\""));
            }
            // RFC 6750 §3: the Bearer challenge carries the error code.
            Error::OAuth { code: code @ (ErrorCode::InvalidToken | ErrorCode::InsufficientScope), .. } => {
                let challenge = format!("Bearer realm=\"idp\", error=\"{code}\"");
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Error::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, RETRY_AFTER);
            }
            _ => {}
        }
        response
    }
}
