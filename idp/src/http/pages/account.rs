//! The account page: every session with its IP, browser and OS, sign-in date and last activity, marking
//! this browser; signing out one or all other sessions; the apps holding consent or tokens, and removing
//! them. Server-rendered, every action a CSRF-protected form.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use super::{PageError, csrf, render, see_other};
use crate::http::api::{AppJson, SessionJson};
use crate::http::session;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    csrf_token: &'a str,
    email: &'a str,
    sessions: Vec<SessionJson>,
    apps: Vec<AppJson>,
}

impl AccountPage<'_> {
    /// `2026-11-24T09:11:00Z` as `2026-11-24 09:11 UTC`, for people.
    fn human(&self, rfc3339: &str) -> String {
        match (rfc3339.get(..10), rfc3339.get(11..16)) {
            (Some(date), Some(time)) => format!("{date} {time} UTC"),
            _ => rfc3339.to_owned(),
        }
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf_token: Option<String>,
}

/// `GET /account`; signed-out visitors are sent to sign in first.
pub async fn show(State(state): State<AppState>, session: Session) -> Result<Response, PageError> {
    let Some(login) = session::current(&session).await? else {
        return Ok(see_other("/login?return_to=%2Faccount"));
    };
    let user = match login.user_id() {
        Some(id) => state.db.users().find(id).await?,
        None => None,
    };
    let accounts = state.accounts();
    let sessions = accounts.sessions(&login.user_id).await?;
    let apps = accounts.apps(&login.user_id).await?;
    let token = csrf::token(&session).await?;
    let page = AccountPage {
        csrf_token: &token,
        email: user.as_ref().map(|u| u.email.as_str()).unwrap_or_default(),
        sessions: sessions.into_iter().map(|e| SessionJson::new(e, Some(&login.sid))).collect(),
        apps: apps.into_iter().map(AppJson::new).collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// Checks the form and returns the signed-in person.
async fn signed_in(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    form: &ActionForm,
) -> Result<Option<session::Login>, PageError> {
    csrf::verify(session, headers, &state.config, form.csrf_token.as_deref()).await?;
    Ok(session::current(session).await?)
}

/// `POST /account/sessions/{sid}/end`.
pub async fn end_session(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let Some(login) = signed_in(&state, &session, &headers, &form).await? else { return Ok(see_other("/login")) };
    if sid == login.sid {
        session::end_browser_session(&state, &session).await?;
        return Ok(see_other("/"));
    }
    state.accounts().end_session(&login.user_id, &sid).await?;
    Ok(see_other("/account"))
}

/// `POST /account/sessions/end-others`.
pub async fn end_other_sessions(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let Some(login) = signed_in(&state, &session, &headers, &form).await? else { return Ok(see_other("/login")) };
    state.accounts().end_other_sessions(&login.user_id, Some(login.sid.as_str())).await?;
    Ok(see_other("/account"))
}

/// `POST /account/apps/{client_id}/revoke`.
pub async fn revoke_app(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let Some(login) = signed_in(&state, &session, &headers, &form).await? else { return Ok(see_other("/login")) };
    state.accounts().revoke_app(&login.user_id, &client_id).await?;
    Ok(see_other("/account"))
}
