//! The signed-in browser: what the session cookie points to.

use tower_sessions::Session;

use crate::config::Config;
use crate::domain::sessions::LoginRecord;

pub use crate::domain::sessions::LoginRecord as Login;

const LOGIN_KEY: &str = "login";

/// Cookie name: with the `__Host-` prefix when served over https, which pins it to this host, path `/`
/// and `Secure` (RFC 6265bis §4.1.3.2).
pub fn cookie_name(config: &Config) -> &'static str {
    if config.is_https() { "__Host-idp_session" } else { "idp_session" }
}

#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct SessionError(#[from] tower_sessions::session::Error);

/// The session store failing is the store being unavailable (503 with `Retry-After`), not a bad request.
impl From<SessionError> for crate::error::Error {
    fn from(e: SessionError) -> Self {
        crate::error::Error::Unavailable(e.into())
    }
}

/// The current login, if any. A record written by an older version that no longer decodes counts as
/// signed out rather than as an error.
pub async fn current(session: &Session) -> Result<Option<LoginRecord>, SessionError> {
    match session.get::<LoginRecord>(LOGIN_KEY).await {
        Ok(login) => Ok(login),
        Err(tower_sessions::session::Error::SerdeJson(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Records a login. The session id is replaced first, so that an id planted before login is worthless
/// afterwards (session fixation, ASVS 7.2.4). The user id is also stored where the session store's per-user
/// index looks for it.
pub async fn sign_in(session: &Session, login: &LoginRecord) -> Result<(), SessionError> {
    session.cycle_id().await?;
    session.insert(session_store::USER_KEY, &login.user_id).await?;
    session.insert(LOGIN_KEY, login).await?;
    Ok(())
}

/// Updates `last_seen` when it is at least a minute old.
pub async fn touch(session: &Session, mut login: LoginRecord, now: i64) -> Result<(), SessionError> {
    if login.needs_touch(now) {
        login.last_seen = now;
        session.insert(LOGIN_KEY, login).await?;
    }
    Ok(())
}

/// Ends the browser session: its data is deleted from the store and the cookie removed.
pub async fn sign_out(session: &Session) -> Result<(), SessionError> {
    session.flush().await?;
    Ok(())
}

/// Signs this browser out: every grant of its session is revoked and the session's clients are told
/// (back-channel logout), then the session is deleted and its cookie removed.
pub async fn end_browser_session(state: &crate::state::AppState, session: &Session) -> Result<(), crate::error::Error> {
    if let Some(login) = current(session).await? {
        state.accounts().end_current_session(&login).await?;
    }
    Ok(sign_out(session).await?)
}

/// Middleware: records the signed-in person's activity (`last_seen`, at most once a minute).
pub async fn keep_last_seen(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    session: Session,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Ok(Some(login)) = current(&session).await
        && let Err(e) = touch(&session, login, state.clock.now().unix_timestamp()).await
    {
        tracing::warn!(error = %e, "cannot record session activity");
    }
    next.run(request).await
}
