//! The consent page: the client's name and each requested scope in plain words. "Allow" records the grant
//! (per user and client, so that a later request for the same or fewer scopes skips the page) and issues
//! the code; "Deny" returns `access_denied`. The pending request is kept in the session under a random
//! transaction id, used once: a consent posted for another transaction or another session is refused.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::{csrf, message, render};
use crate::domain::scope::{self, Scopes};
use crate::domain::tokens;
use crate::http::oauth::authorize::{Outcome, Validated, validate};
use crate::http::oauth::oxide::AuthorizeParams;
use crate::http::session::{self, Login};
use crate::state::AppState;

/// The session key of the pending authorization requests, newest last.
const PENDING_KEY: &str = "pending_authorizations";
/// A browser rarely has more than one consent page open; older requests are forgotten beyond this.
const MAX_PENDING: usize = 5;

type Pending = Vec<(String, AuthorizeParams)>;

async fn remember_pending(
    session: &Session,
    transaction: &str,
    params: AuthorizeParams,
) -> Result<(), super::PageError> {
    let mut pending: Pending = session.get(PENDING_KEY).await.map_err(super::PageError::session)?.unwrap_or_default();
    pending.push((transaction.to_owned(), params));
    let excess = pending.len().saturating_sub(MAX_PENDING);
    pending.drain(..excess);
    session.insert(PENDING_KEY, pending).await.map_err(super::PageError::session)
}

/// Takes the request of `transaction` out of the session: each transaction is answered once.
async fn take_pending(session: &Session, transaction: &str) -> Result<Option<AuthorizeParams>, super::PageError> {
    let mut pending: Pending = session.get(PENDING_KEY).await.map_err(super::PageError::session)?.unwrap_or_default();
    let Some(index) = pending.iter().position(|(id, _)| id == transaction) else { return Ok(None) };
    let (_, params) = pending.remove(index);
    session.insert(PENDING_KEY, pending).await.map_err(super::PageError::session)?;
    Ok(Some(params))
}

/// What a scope lets the client do, in words a person understands.
fn describe(scope: &str) -> String {
    match scope {
        scope::OPENID => "Know who you are when you sign in".to_owned(),
        scope::PROFILE => "See your name".to_owned(),
        scope::EMAIL => "See your email address".to_owned(),
        scope::OFFLINE_ACCESS => "Stay connected to your account while you are away".to_owned(),
        other => format!("Use your account for \u{201c}{other}\u{201d}"),
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    csrf_token: &'a str,
    transaction: &'a str,
    client_name: &'a str,
    email: &'a str,
    scopes: Vec<String>,
}

/// Shows the page for a validated request and remembers the request under a new transaction.
pub async fn show(
    state: &AppState,
    session: &Session,
    validated: &Validated<'_>,
    login: &Login,
    params: AuthorizeParams,
) -> Response {
    let transaction = tokens::new_id();
    let shown = async {
        remember_pending(session, &transaction, params).await?;
        let token = csrf::token(session).await?;
        let email = match login.user_id() {
            Some(id) => state.db.users().find(id).await?.map(|u| u.email.as_str().to_owned()),
            None => None,
        };
        let scopes = validated.requested_scope().iter().map(|s| describe(s.as_str())).collect();
        let page = ConsentPage {
            csrf_token: &token,
            transaction: &transaction,
            client_name: &validated.client.name,
            email: email.as_deref().unwrap_or_default(),
            scopes,
        };
        Ok::<_, super::PageError>(render(StatusCode::OK, &page))
    };
    shown.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub struct ConsentForm {
    csrf_token: Option<String>,
    #[serde(default)]
    transaction: String,
    #[serde(default)]
    decision: String,
}

/// `POST /consent`.
pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    if let Err(e) = csrf::verify(&session, &headers, &state.config, form.csrf_token.as_deref()).await {
        return e.into_response();
    }
    let expired = || {
        message(StatusCode::BAD_REQUEST, "This request has expired", "Go back to the application and sign in again.")
    };
    let params = match take_pending(&session, &form.transaction).await {
        Ok(Some(params)) => params,
        Ok(None) => return expired(),
        Err(e) => return e.into_response(),
    };
    let login = match session::current(&session).await {
        Ok(Some(login)) => login,
        Ok(None) => return expired(),
        Err(e) => return super::PageError::from(e).into_response(),
    };
    let validated = match validate(&state, &params).await {
        Ok(validated) => validated,
        Err(outcome) => return outcome.into_response(&state),
    };
    let outcome = match form.decision.as_str() {
        "allow" => {
            let now = state.clock.now().unix_timestamp();
            if let Err(e) = remember(&state, &login, &validated, now).await {
                return e.into_response();
            }
            validated.issue_code(&login, &params, now).await
        }
        "deny" => validated.deny(),
        _ => Outcome::Refused("Choose Allow or Deny."),
    };
    outcome.into_response(&state)
}

/// Records the consent: the scopes granted before, plus the ones just approved.
async fn remember(
    state: &AppState,
    login: &Login,
    validated: &Validated<'_>,
    now: i64,
) -> Result<(), super::PageError> {
    let grants = state.db.grants();
    let client_id = validated.client.id.as_str();
    let requested = validated.requested_scope();
    let union = match grants.consent(&login.user_id, client_id).await? {
        Some(previous) => Scopes::from_tokens(previous.iter().chain(requested.iter()).map(|s| s.as_str()))
            .map_err(crate::error::Error::internal)?,
        None => requested,
    };
    grants.save_consent(&login.user_id, client_id, &union, now).await?;
    Ok(())
}
