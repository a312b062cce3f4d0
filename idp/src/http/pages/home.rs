//! The home page: who is signed in, and signing out.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use super::{PageError, csrf, render, see_other};
use crate::http::session;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    csrf_token: &'a str,
    email: Option<&'a str>,
    name: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf_token: Option<String>,
}

pub async fn show(State(state): State<AppState>, session: Session) -> Result<Response, PageError> {
    let user = match session::current(&session).await?.and_then(|login| login.user_id()) {
        Some(id) => state.db.users().find(id).await?,
        None => None,
    };
    let token = csrf::token(&session).await?;
    let page = HomePage {
        csrf_token: &token,
        email: user.as_ref().map(|u| u.email.as_str()),
        name: user.as_ref().and_then(|u| u.name.as_ref()).map(|n| n.as_str()),
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Result<Response, PageError> {
    csrf::verify(&session, &headers, &state.config, form.csrf_token.as_deref()).await?;
    // Signing out ends the session everywhere: its tokens are revoked and its clients told.
    session::end_browser_session(&state, &session).await?;
    Ok(see_other("/"))
}
