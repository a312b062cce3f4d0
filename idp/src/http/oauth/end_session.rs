//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). With a valid `id_token_hint` for the
//! signed-in user the browser session ends at once; without one the person confirms on a page first, so
//! that no other site can sign them out. `post_logout_redirect_uri` must be registered exactly for the
//! client, and `state` is passed back.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::domain::grants::introspection::verify_id_token_hint;
use crate::http::pages::{PageError, csrf, message, render, see_other};
use crate::http::session;
use crate::state::AppState;

pub const PATH: &str = "/end_session";

#[derive(Debug, Default, Deserialize)]
pub struct EndSessionParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// Present when the person confirmed on our page.
    csrf_token: Option<String>,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage<'a> {
    csrf_token: &'a str,
    post_logout_redirect_uri: &'a str,
    state: &'a str,
    client_id: &'a str,
}

pub async fn get(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Query(params): Query<EndSessionParams>,
) -> Response {
    end_session(&state, &session, &headers, params).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn post(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(params): Form<EndSessionParams>,
) -> Response {
    end_session(&state, &session, &headers, params).await.unwrap_or_else(IntoResponse::into_response)
}

fn refused(why: &str) -> Response {
    message(StatusCode::BAD_REQUEST, "This sign-out request is not valid", why)
}

async fn end_session(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    params: EndSessionParams,
) -> Result<Response, PageError> {
    let ring = state.keys.current();
    let ctx = state.grant_context(&ring);
    let hint = match params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        None => None,
        Some(token) => match verify_id_token_hint(&ctx, token) {
            Some(claims) => Some(claims),
            None => return Ok(refused("The id_token_hint was not issued here.")),
        },
    };
    let client_id = match (hint.as_ref().map(|h| h.aud.as_str()), params.client_id.as_deref().filter(|c| !c.is_empty()))
    {
        (Some(a), Some(b)) if a != b => return Ok(refused("client_id does not match the id_token_hint.")),
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let redirect = match params.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) => state.db.clients().find(id).await?,
                None => None,
            };
            match client {
                Some(client) if client.has_post_logout_redirect_uri(uri) => Some(uri.to_owned()),
                _ => return Ok(refused("post_logout_redirect_uri is not registered for this client.")),
            }
        }
    };

    let login = session::current(session).await?;
    let confirmed = match params.csrf_token.as_deref() {
        Some(token) => {
            csrf::verify(session, headers, &state.config, Some(token)).await?;
            true
        }
        // A valid hint for the signed-in person (or for nobody signed in) needs no confirmation.
        None => hint.as_ref().is_some_and(|h| login.as_ref().is_none_or(|l| l.user_id == h.sub)),
    };
    if !confirmed {
        let token = csrf::token(session).await?;
        let page = ConfirmPage {
            csrf_token: &token,
            post_logout_redirect_uri: redirect.as_deref().unwrap_or_default(),
            state: params.state.as_deref().unwrap_or_default(),
            client_id: client_id.as_deref().unwrap_or_default(),
        };
        return Ok(render(StatusCode::OK, &page));
    }

    session::end_browser_session(state, session).await?;
    tracing::debug!(client = client_id.as_deref().unwrap_or("-"), "browser session ended by logout");
    match redirect {
        Some(uri) => {
            let mut url = url::Url::parse(&uri).map_err(|e| PageError::App(crate::error::Error::internal(e)))?;
            if let Some(state_value) = params.state.as_deref().filter(|s| !s.is_empty()) {
                url.query_pairs_mut().append_pair("state", state_value);
            }
            Ok(see_other(url.as_str()))
        }
        None => Ok(message(StatusCode::OK, "Signed out", "You are signed out. You can close this window.")),
    }
}
