//! JSON APIs for a session-management UI: the signed-in person's own sessions and apps
//! (`/api/account/…`, by session cookie or an access token with scope `account`) and the same for any user
//! (`/api/admin/…`, by a client-credentials token with scope `admin`).

use axum::Router;
use axum::routing::{delete, get};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::domain::account::SessionEntry;
use crate::state::AppState;
use crate::storage::grants::AppAccess;

pub mod account;
pub mod admin;
pub mod caller;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/account/sessions", get(account::list_sessions).delete(account::end_other_sessions))
        .route("/api/account/sessions/{sid}", delete(account::end_session))
        .route("/api/account/apps", get(account::list_apps))
        .route("/api/account/apps/{client_id}", delete(account::revoke_app))
        .route("/api/admin/users/{user_id}/sessions", get(admin::list_sessions).delete(admin::end_all_sessions))
        .route("/api/admin/users/{user_id}/sessions/{sid}", delete(admin::end_session))
        .route("/api/admin/users/{user_id}/apps", get(admin::list_apps))
        .route("/api/admin/users/{user_id}/apps/{client_id}", delete(admin::revoke_app))
}

pub(crate) fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

/// A signed-in session (never its cookie value).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionJson {
    /// The public session id, also the `sid` of its tokens.
    pub sid: String,
    pub ip: String,
    #[schema(example = "Firefox")]
    pub browser: &'static str,
    #[schema(example = "Linux")]
    pub os: &'static str,
    pub user_agent: String,
    /// RFC 3339.
    pub signed_in_at: String,
    /// RFC 3339, at most a minute old.
    pub last_seen_at: String,
    /// RFC 8176 authentication methods.
    pub amr: Vec<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionJson {
    pub fn new(entry: SessionEntry, current_sid: Option<&str>) -> SessionJson {
        let current = current_sid == Some(entry.login.sid.as_str());
        SessionJson {
            signed_in_at: rfc3339(entry.login.auth_time),
            last_seen_at: rfc3339(entry.login.last_seen),
            sid: entry.login.sid,
            ip: entry.login.ip,
            browser: entry.browser,
            os: entry.os,
            user_agent: entry.login.user_agent,
            amr: entry.login.amr,
            current,
        }
    }
}

/// An app (client) with access to the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppJson {
    pub client_id: String,
    pub name: String,
    /// The scopes consented to, if a consent is recorded.
    pub scope: Option<String>,
    /// RFC 3339.
    pub consented_at: Option<String>,
    /// Grants (token families) still live.
    pub active_grants: i64,
}

impl AppJson {
    pub fn new((access, name): (AppAccess, String)) -> AppJson {
        AppJson {
            client_id: access.client_id,
            name,
            scope: access.scope.map(|s| s.to_string()),
            consented_at: access.granted_at.map(rfc3339),
            active_grants: access.live_grants,
        }
    }
}
