//! CSRF protection for HTML forms: a synchronizer token kept in the session and echoed by each form, and a
//! check that a present `Origin` header is the issuer's own.

use axum::http::HeaderMap;
use axum::http::header::ORIGIN;
use tower_sessions::Session;

use super::PageError;
use crate::config::Config;
use crate::domain::random;

const KEY: &str = "csrf_token";

/// The session's CSRF token, created on first use.
pub async fn token(session: &Session) -> Result<String, PageError> {
    if let Some(token) = session.get::<String>(KEY).await.map_err(PageError::session)? {
        return Ok(token);
    }
    renew(session).await
}

/// Replaces the token (at login, together with the session id).
pub async fn renew(session: &Session) -> Result<String, PageError> {
    let token = random::token::<32>();
    session.insert(KEY, &token).await.map_err(PageError::session)?;
    Ok(token)
}

/// Accepts a form submission only with the session's token and, when the browser sent a real one, the
/// issuer's own `Origin`.
pub async fn verify(
    session: &Session,
    headers: &HeaderMap,
    config: &Config,
    presented: Option<&str>,
) -> Result<(), PageError> {
    // Under `Referrer-Policy: no-referrer` (our pages' policy) browsers send `Origin: null` even for the
    // issuer's own forms (Fetch, "serializing a request origin"): `null` says nothing, so the token decides.
    if let Some(origin) = headers.get(ORIGIN).filter(|o| o.as_bytes() != b"null") {
        let expected = config.issuer.origin().ascii_serialization();
        if origin.as_bytes() != expected.as_bytes() {
            return Err(PageError::Csrf);
        }
    }
    let expected = session.get::<String>(KEY).await.map_err(PageError::session)?;
    match (expected, presented) {
        (Some(expected), Some(presented))
            if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes()).is_ok() =>
        {
            Ok(())
        }
        _ => Err(PageError::Csrf),
    }
}
