//! `/api/admin`: the same operations for any user, for back-office services.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::account::Ended;
use super::caller::AdminCaller;
use super::{AppJson, SessionJson};
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
    let entries = state.accounts().sessions(&user_id).await?;
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
    if state.accounts().end_session(&user_id, &sid).await? {
        tracing::info!(admin = %admin.client_id, user = %user_id, "session ended by an administrator");
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
    let ended = state.accounts().end_other_sessions(&user_id, None).await?;
    tracing::info!(admin = %admin.client_id, user = %user_id, ended, "all sessions ended by an administrator");
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
    let apps = state.accounts().apps(&user_id).await?;
    Ok(Json(apps.into_iter().map(AppJson::new).collect()))
}

/// Removes an app from a user's account.
#[utoipa::path(delete, path = "/api/admin/users/{user_id}/apps/{client_id}", tag = "admin", security(("bearer" = [])),
    params(("user_id" = String, Path), ("client_id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_app(
    State(state): State<AppState>,
    admin: AdminCaller,
    Path((user_id, client_id)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    if state.accounts().revoke_app(&user_id, &client_id).await? {
        tracing::info!(admin = %admin.client_id, user = %user_id, client = %client_id, "app removed by an administrator");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound)
    }
}
