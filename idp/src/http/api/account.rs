//! `/api/account`: the caller's own sessions and apps.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use tower_sessions::Session;
use utoipa::ToSchema;

use super::caller::AccountCaller;
use super::{AppJson, SessionJson};
use crate::error::Error;
use crate::http::session;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    /// How many sessions were ended.
    pub ended: usize,
}

/// The caller's signed-in sessions.
#[utoipa::path(get, path = "/api/account/sessions", tag = "account", security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = [SessionJson]), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: AccountCaller,
) -> Result<Json<Vec<SessionJson>>, Error> {
    let entries = state.accounts().sessions(&caller.user_id).await?;
    Ok(Json(entries.into_iter().map(|e| SessionJson::new(e, caller.sid.as_deref())).collect()))
}

/// Ends one of the caller's sessions: its browser is signed out and its tokens revoked.
#[utoipa::path(delete, path = "/api/account/sessions/{sid}", tag = "account", security(("bearer" = []), ("session" = [])),
    params(("sid" = String, Path, description = "The session's public id")),
    responses((status = 204, description = "Ended"), (status = 404, description = "No such session of the caller", body = crate::error::ErrorBody)))]
pub async fn end_session(
    State(state): State<AppState>,
    caller: AccountCaller,
    session: Session,
    Path(sid): Path<String>,
) -> Result<StatusCode, Error> {
    if !state.accounts().end_session(&caller.user_id, &sid).await? {
        return Err(Error::NotFound);
    }
    // The calling browser's own session: its cookie goes too, rather than naming a session that is gone.
    if session::current(&session).await?.is_some_and(|login| login.sid == sid) {
        session::sign_out(&session).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the caller except the one making the request.
#[utoipa::path(delete, path = "/api/account/sessions", tag = "account", security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = Ended)))]
pub async fn end_other_sessions(State(state): State<AppState>, caller: AccountCaller) -> Result<Json<Ended>, Error> {
    let ended = state.accounts().end_other_sessions(&caller.user_id, caller.sid.as_deref()).await?;
    Ok(Json(Ended { ended }))
}

/// The apps holding the caller's consent or tokens.
#[utoipa::path(get, path = "/api/account/apps", tag = "account", security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = [AppJson])))]
pub async fn list_apps(State(state): State<AppState>, caller: AccountCaller) -> Result<Json<Vec<AppJson>>, Error> {
    let apps = state.accounts().apps(&caller.user_id).await?;
    Ok(Json(apps.into_iter().map(AppJson::new).collect()))
}

/// Removes an app: its consent and every token it holds for the caller.
#[utoipa::path(delete, path = "/api/account/apps/{client_id}", tag = "account", security(("bearer" = []), ("session" = [])),
    params(("client_id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_app(
    State(state): State<AppState>,
    caller: AccountCaller,
    Path(client_id): Path<String>,
) -> Result<StatusCode, Error> {
    if state.accounts().revoke_app(&caller.user_id, &client_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound)
    }
}
