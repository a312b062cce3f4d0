//! Server-rendered HTML pages: sign-in, registration and the signed-in home page. They work without
//! JavaScript, carry CSRF tokens, and are never framed or cached (RFC 9700 §4.16).

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::session::SessionError;
use crate::state::AppState;

pub mod account;
pub mod consent;
pub mod csrf;
pub mod home;
pub mod login;
pub mod register;

const STYLESHEET: &str = include_str!("templates/style.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::show))
        .route("/login", get(login::show).post(login::submit))
        .route("/register", get(register::show).post(register::submit))
        .route("/logout", axum::routing::post(home::sign_out))
        .route("/consent", axum::routing::post(consent::submit))
        .route("/account", get(account::show))
        .route("/account/sessions/{sid}/end", axum::routing::post(account::end_session))
        .route("/account/sessions/end-others", axum::routing::post(account::end_other_sessions))
        .route("/account/apps/{client_id}/revoke", axum::routing::post(account::revoke_app))
}

/// Browser pages are never framed, cached or referred (RFC 9700 §4.16), and run no script.
pub fn with_page_headers(router: Router<AppState>) -> Router<AppState> {
    router
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
}

/// The stylesheet of the pages.
pub fn assets() -> Router<AppState> {
    Router::new().route("/assets/style.css", get(stylesheet))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        STYLESHEET,
    )
}

/// A page that could not be served, shown as an HTML error page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The form's CSRF token is missing or wrong, or it was posted from another origin.
    #[error("CSRF check failed")]
    Csrf,
    #[error(transparent)]
    App(#[from] crate::error::Error),
}

impl PageError {
    pub fn session(e: impl Into<SessionError>) -> PageError {
        PageError::App(crate::error::Error::Unavailable(e.into().into()))
    }
}

impl From<SessionError> for PageError {
    fn from(e: SessionError) -> Self {
        PageError::session(e)
    }
}

impl From<crate::storage::StorageError> for PageError {
    fn from(e: crate::storage::StorageError) -> Self {
        PageError::App(e.into())
    }
}

/// A page with a title and one message: errors, and confirmations such as "signed out".
pub fn message(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &ErrorPage { title, message })
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "For your security the form could not be accepted. Go back, reload the page and try again.",
            ),
            PageError::App(e) => {
                e.log();
                if e.status() == StatusCode::SERVICE_UNAVAILABLE {
                    return unavailable();
                }
                (e.status(), "Something went wrong", "The request could not be completed. Please try again.")
            }
        };
        render(status, &ErrorPage { title, message })
    }
}

/// The page for a dependency that is down (the database, the session store): 503 with `Retry-After`, as the
/// JSON errors have.
pub fn unavailable() -> Response {
    let mut response = message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The request could not be completed. Please try again in a moment.",
    );
    response.headers_mut().insert(header::RETRY_AFTER, crate::error::RETRY_AFTER);
    response
}

/// Renders a template as an HTML response.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Where to go after signing in: a local path only (never another origin: no open redirect).
pub fn safe_return_to(candidate: Option<&str>) -> String {
    match candidate {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A 303 redirect: after a POST the browser follows with a GET (RFC 9700 §4.12: never 307).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static("/"))]).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_whose_dependency_is_down_is_503_with_retry_after() {
        let down = crate::error::Error::Unavailable(anyhow::anyhow!("the session store is down"));
        let response = PageError::App(down).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    }

    #[test]
    fn return_to_accepts_local_paths_only() {
        assert_eq!(safe_return_to(Some("/authorize?client_id=a&state=b")), "/authorize?client_id=a&state=b");
        for hostile in ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/a\nb", ""]
        {
            assert_eq!(safe_return_to(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
