//! The crate's error type: every failure a JSON endpoint can meet, turned into an HTTP response in one
//! place. The `error` member always carries an RFC 6749 §5.2 style code; internal details are logged, never
//! sent. (HTML pages render their own messages; see `http::pages`.)

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::keys::KeyError;
use crate::storage::StorageError;
use crate::storage::keystore::KeyStoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (RFC 6749 §5.2 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
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

/// The JSON error body (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// An RFC 6749 §5.2 error code.
    #[schema(example = "invalid_request")]
    pub error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::NotFound => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unavailable(_) => "temporarily_unavailable",
            Error::Internal(_) => "server_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Error {
        Error::Internal(e.into())
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(field) => Error::Conflict(field),
            StorageError::Unavailable(_) => Error::Unavailable(e.into()),
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

impl Error {
    /// Logs what the response will not say: the cause of an unavailable or internal error.
    pub fn log(&self) {
        match self {
            Error::Unavailable(e) => tracing::warn!(error = format!("{e:#}"), "dependency unavailable"),
            Error::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            _ => {}
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let description = match &self {
            Error::InvalidRequest(message) => Some(message.clone()),
            Error::Conflict(_) => Some(self.to_string()),
            Error::Unavailable(_) | Error::Internal(_) | Error::NotFound => None,
        };
        let mut response =
            (self.status(), Json(ErrorBody { error: self.code(), error_description: description })).into_response();
        if matches!(self, Error::Unavailable(_)) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}
