//! The registration page: each invalid field gets its message under it.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use super::login::ReturnTo;
use super::{PageError, csrf, render, safe_return_to, see_other};
use crate::domain::email::Email;
use crate::domain::password::{self, Password};
use crate::domain::sessions::LoginRecord;
use crate::domain::users::{DisplayName, NewUser, UserId};
use crate::http::extract::ClientInfo;
use crate::http::session;
use crate::state::AppState;
use crate::storage::StorageError;

pub const EMAIL_TAKEN: &str = "An account with this email already exists. Sign in instead.";

#[derive(Default)]
struct FieldErrors {
    email: Option<String>,
    name: Option<String>,
    password: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.email.is_some() || self.name.is_some() || self.password.is_some()
    }
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    csrf_token: &'a str,
    return_to: &'a str,
    email: &'a str,
    name: &'a str,
    errors: FieldErrors,
}

#[derive(Deserialize)]
pub struct RegisterForm {
    csrf_token: Option<String>,
    return_to: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub async fn show(session: Session, Query(query): Query<ReturnTo>) -> Result<Response, PageError> {
    let token = csrf::token(&session).await?;
    let return_to = safe_return_to(query.return_to.as_deref());
    let page =
        RegisterPage { csrf_token: &token, return_to: &return_to, email: "", name: "", errors: FieldErrors::default() };
    Ok(render(StatusCode::OK, &page))
}

pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    client: ClientInfo,
    Form(form): Form<RegisterForm>,
) -> Result<Response, PageError> {
    csrf::verify(&session, &headers, &state.config, form.csrf_token.as_deref()).await?;
    let return_to = safe_return_to(form.return_to.as_deref());

    let mut errors = FieldErrors::default();
    let email = Email::parse(&form.email).map_err(|e| errors.email = Some(e.to_string())).ok();
    let name = match form.name.trim() {
        "" => None,
        name => DisplayName::parse(name).map_err(|e| errors.name = Some(e.to_string())).ok(),
    };
    let password = Password::new(form.password).map_err(|e| errors.password = Some(e.to_string())).ok();

    if let (Some(email), Some(password), false) = (email, password, errors.any()) {
        let password_hash = password::hash(&password).await.map_err(crate::error::Error::internal)?;
        let new = NewUser { id: UserId::new(), email, name, password_hash };
        let now = state.clock.now();
        match state.db.users().insert(&new, now).await {
            Ok(user) => {
                session::sign_in(
                    &session,
                    &LoginRecord::new(user.id, now.unix_timestamp(), client.ip, &client.user_agent),
                )
                .await?;
                csrf::renew(&session).await?;
                tracing::debug!(user = %user.id, "registered");
                return Ok(see_other(&return_to));
            }
            Err(StorageError::Conflict(_)) => errors.email = Some(EMAIL_TAKEN.to_owned()),
            Err(e) => return Err(e.into()),
        }
    }

    let token = csrf::token(&session).await?;
    let page = RegisterPage {
        csrf_token: &token,
        return_to: &return_to,
        email: form.email.trim(),
        name: form.name.trim(),
        errors,
    };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
