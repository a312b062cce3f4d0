//! `/api/admin`: the same operations for any user, for back-office services.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::account::Ended;
use super::caller::AdminCaller;
use super::{AppJson, SessionJson};
use crate::domain::account;
use crate::error::Error;
use crate::state::AppState;

/// A user's signed-in sessions.
#[utoipa::path(get, path = "/api/admin/users/{user_id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("user_id" = String, Path)), responses((status = 200, body = [SessionJson]), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(user_id): Path<String>,
) -> Result<Json<Vec<SessionJson>>, Error> {
    let entries = account::sessions(&state.sessions, &user_id).await?;
    Ok(Json(entries.into_iter().map(|e| SessionJson::new(e, None)).collect()))
}

/// Ends one session of a user.
#[utoipa::path(delete, path = "/api/admin/users/{user_id}/sessions/{sid}", tag = "admin", security(("bearer" = [])),
    params(("user_id" = String, Path), ("sid" = String, Path)),
    responses((status = 204, description = "Ended"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn end_session(
    State(state): State<AppState>,
    admin: AdminCaller,
    Path((user_id, sid)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    let now = state.clock.now().unix_timestamp();
    if account::end_session(&state.db, &state.sessions, &user_id, &sid, now).await? {
        tracing::info!(admin = %admin.client_id, user = %user_id, "session ended by an administrator");
        state.backchannel_wake.notify_one();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound)
    }
}

/// Ends every session of a user.
#[utoipa::path(delete, path = "/api/admin/users/{user_id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("user_id" = String, Path)), responses((status = 200, body = Ended)))]
pub async fn end_all_sessions(
    State(state): State<AppState>,
    admin: AdminCaller,
    Path(user_id): Path<String>,
) -> Result<Json<Ended>, Error> {
    let now = state.clock.now().unix_timestamp();
    let ended = account::end_other_sessions(&state.db, &state.sessions, &user_id, None, now).await?;
    tracing::info!(admin = %admin.client_id, user = %user_id, ended, "all sessions ended by an administrator");
    state.backchannel_wake.notify_one();
    Ok(Json(Ended { ended }))
}

/// The apps holding a user's consent or tokens.
#[utoipa::path(get, path = "/api/admin/users/{user_id}/apps", tag = "admin", security(("bearer" = [])),
    params(("user_id" = String, Path)), responses((status = 200, body = [AppJson])))]
pub async fn list_apps(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(user_id): Path<String>,
) -> Result<Json<Vec<AppJson>>, Error> {
    let apps = account::apps(&state.db, &user_id, state.clock.now().unix_timestamp()).await?;
    Ok(Json(apps.into_iter().map(AppJson::new).collect()))
}

/// Removes an app from a user's account.
#[utoipa::path(delete, path = "/api/admin/users/{user_id}/apps/{client_id}", tag = "admin", security(("bearer" = [])),
    params(("user_id" = String, Path), ("client_id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_app(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path((user_id, client_id)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    let now = state.clock.now().unix_timestamp();
    if account::revoke_app(&state.db, &user_id, &client_id, now).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound)
    }
}
