//! The signed-in browser: what the session cookie points to.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::config::Config;
use crate::domain::tokens;
use crate::domain::users::UserId;

const LOGIN_KEY: &str = "login";

/// Cookie name: with the `__Host-` prefix when served over https, which pins it to this host, path `/`
/// and `Secure` (RFC 6265bis §4.1.3.2).
pub fn cookie_name(config: &Config) -> &'static str {
    if config.is_https() { "__Host-idp_session" } else { "idp_session" }
}

/// Who is signed in, when they authenticated (OIDC Core `auth_time`), and the session id every token
/// issued in this browser session carries (`sid`, OIDC Front-/Back-Channel Logout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub user_id: String,
    /// Unix seconds.
    pub auth_time: i64,
    pub sid: String,
}

impl Login {
    pub fn user_id(&self) -> Option<UserId> {
        UserId::parse(&self.user_id)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct SessionError(#[from] tower_sessions::session::Error);

/// The current login, if any.
pub async fn current(session: &Session) -> Result<Option<Login>, SessionError> {
    Ok(session.get::<Login>(LOGIN_KEY).await?)
}

/// Records a login. The session id is replaced first, so that an id planted before login is worthless
/// afterwards (session fixation, ASVS 7.2.4).
pub async fn sign_in(session: &Session, user: UserId, now: OffsetDateTime) -> Result<(), SessionError> {
    session.cycle_id().await?;
    let login = Login { user_id: user.to_string(), auth_time: now.unix_timestamp(), sid: tokens::new_id() };
    session.insert(LOGIN_KEY, login).await?;
    Ok(())
}

/// Ends the browser session: its data is deleted from the store and the cookie removed.
pub async fn sign_out(session: &Session) -> Result<(), SessionError> {
    session.flush().await?;
    Ok(())
}
