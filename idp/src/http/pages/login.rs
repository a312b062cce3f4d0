//! The sign-in page. A failed sign-in shows one generic message whether the email is unknown or the
//! password wrong, and costs the same time in both cases (ASVS 6.3.8).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use super::{PageError, csrf, render, safe_return_to, see_other};
use crate::domain::email::Email;
use crate::domain::password::{self, Password};
use crate::domain::sessions::LoginRecord;
use crate::http::extract::ClientInfo;
use crate::http::session;
use crate::state::AppState;

pub const BAD_CREDENTIALS: &str = "Wrong email or password.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    return_to: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct ReturnTo {
    pub return_to: Option<String>,
    /// OIDC Core §3.1.2.1 `login_hint`, passed on by the authorization endpoint: prefills the email.
    pub login_hint: Option<String>,
}

/// Form fields are optional so that a missing one is answered by this page, not by a framework error.
#[derive(Deserialize)]
pub struct LoginForm {
    csrf_token: Option<String>,
    return_to: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn show(session: Session, Query(query): Query<ReturnTo>) -> Result<Response, PageError> {
    let token = csrf::token(&session).await?;
    let return_to = safe_return_to(query.return_to.as_deref());
    let email = query.login_hint.as_deref().unwrap_or_default();
    Ok(render(StatusCode::OK, &LoginPage { csrf_token: &token, return_to: &return_to, email, error: None }))
}

pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    client: ClientInfo,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    csrf::verify(&session, &headers, &state.config, form.csrf_token.as_deref()).await?;
    let return_to = safe_return_to(form.return_to.as_deref());

    let user = match Email::parse(&form.email) {
        Ok(email) => state.db.users().find_by_email(&email).await?,
        Err(_) => None,
    };
    // Unknown accounts are checked against a dummy hash: same work, same answer.
    let verified = password::verify(&form.password, user.as_ref().map(|u| &u.password_hash)).await;
    let user = match user {
        Some(user) if verified => user,
        _ => {
            tracing::debug!("sign-in refused");
            let token = csrf::token(&session).await?;
            let page = LoginPage {
                csrf_token: &token,
                return_to: &return_to,
                email: form.email.trim(),
                error: Some(BAD_CREDENTIALS),
            };
            return Ok(render(StatusCode::UNAUTHORIZED, &page));
        }
    };
    let now = state.clock.now();

    if user.password_hash.needs_rehash()
        && let Ok(password) = Password::new(form.password)
        && let Ok(hash) = password::hash(&password).await
    {
        // Upgrading an old hash is best effort: the sign-in stands either way.
        if let Err(e) = state.db.users().set_password_hash(user.id, &hash, now).await {
            tracing::warn!(error = %e, "cannot upgrade a password hash");
        }
    }

    session::sign_in(&session, &LoginRecord::new(user.id, now.unix_timestamp(), client.ip, &client.user_agent)).await?;
    csrf::renew(&session).await?;
    tracing::debug!(user = %user.id, "signed in");
    Ok(see_other(&return_to))
}
