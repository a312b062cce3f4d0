//! The authorization endpoint (RFC 6749 §3.1, §4.1.1; OIDC Core §3.1.2). oxide-auth validates the request
//! (client, exact redirect URI, `response_type=code`, PKCE S256, scope); around it this module adds OpenID
//! Connect: `prompt`, `max_age`, `id_token_hint`, `nonce`, sign-in, consent, and `iss` on every response
//! to the client (RFC 9207).
//!
//! Errors about the client or its redirect URI show an error page and never redirect (RFC 6749 §4.1.2.1);
//! every other error goes back to the redirect URI with `error`, `state` and `iss`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use oxide_auth::code_grant::authorization::Error as FlowError;
use oxide_auth_async::code_grant::authorization::{Pending, authorization_code};
use tower_sessions::Session;
use url::Url;

use super::oxide::{Authorization, AuthorizationEndpoint, AuthorizeParams};
use super::params;
use crate::domain::clients::{Client, GrantType};
use crate::domain::grants::introspection::verify_id_token_hint;
use crate::domain::grants::pkce;
use crate::domain::scope::Scopes;
use crate::error::ErrorCode;
use crate::http::pages::{self, consent, see_other};
use crate::http::session::{self, Login};
use crate::state::AppState;

pub const PATH: &str = "/authorize";

/// How an authorization request ends.
pub enum Outcome {
    /// Back to the client with a code or an error; `iss` is appended.
    Client(Url),
    /// A page or a redirect within the issuer (sign-in, consent).
    Page(Response),
    /// The client or redirect URI cannot be trusted: an error page, never a redirect.
    Refused(&'static str),
    /// Storage or signing failed.
    Failed,
}

impl Outcome {
    pub fn into_response(self, state: &AppState) -> Response {
        match self {
            Outcome::Client(mut url) => {
                url.query_pairs_mut().append_pair("iss", state.config.issuer_id());
                see_other(url.as_str())
            }
            Outcome::Page(response) => response,
            Outcome::Refused(message) => {
                pages::message(StatusCode::BAD_REQUEST, "This sign-in request is not valid", message)
            }
            Outcome::Failed => pages::unavailable(),
        }
    }
}

/// `GET /authorize`.
pub async fn get(State(state): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    let params = AuthorizeParams::parse(query.as_deref().unwrap_or_default());
    authorize(&state, &session, params).await.into_response(&state)
}

/// `POST /authorize` (OIDC Core §3.1.2.1: the same parameters, form-encoded).
pub async fn post(State(state): State<AppState>, session: Session, headers: HeaderMap, body: Bytes) -> Response {
    if !params::is_form(&headers) {
        return Outcome::Refused("The request body must be form-encoded.").into_response(&state);
    }
    // Repeated parameters are handled like those of a GET (`AuthorizeParams::refused`).
    let params = AuthorizeParams::parse(&String::from_utf8_lossy(&body));
    authorize(&state, &session, params).await.into_response(&state)
}

/// A request that oxide-auth has validated, with its client.
pub struct Validated<'a> {
    pub endpoint: AuthorizationEndpoint<'a>,
    pub pending: Pending,
    pub client: Arc<Client>,
}

impl Validated<'_> {
    /// The error response to the client for this request (RFC 6749 §4.1.2.1).
    pub fn error(&self, code: ErrorCode, description: &str, params: &AuthorizeParams) -> Outcome {
        let mut url = self.pending.pre_grant().redirect_uri.to_url();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("error", code.as_str());
            query.append_pair("error_description", &crate::error::error_description(description));
            if let Some(state) = params.get("state") {
                query.append_pair("state", state);
            }
        }
        Outcome::Client(url)
    }

    pub fn requested_scope(&self) -> Scopes {
        Scopes::parse(&self.pending.pre_grant().scope.to_string()).unwrap_or_default()
    }

    /// Issues the code for `login` (consent already established) and returns the redirect to the client.
    pub async fn issue_code(mut self, login: &Login, params: &AuthorizeParams, now: i64) -> Outcome {
        self.endpoint.authorizer.authorization = Some(Authorization {
            user_id: login.user_id.clone(),
            auth_time: login.auth_time,
            sid: login.sid.clone(),
            nonce: params.get("nonce").map(str::to_owned),
            now,
        });
        match self.pending.authorize(&mut self.endpoint, login.user_id.as_str().into()).await {
            Ok(url) => Outcome::Client(url),
            Err(e) => flow_error(e),
        }
    }

    /// The user said no (RFC 6749 §4.1.2.1 `access_denied`).
    pub fn deny(self) -> Outcome {
        match self.pending.deny() {
            Ok(url) => Outcome::Client(url),
            Err(e) => flow_error(e),
        }
    }
}

fn flow_error(e: FlowError) -> Outcome {
    match e {
        FlowError::Ignore => {
            Outcome::Refused("The client is unknown, or the redirect_uri is missing or not registered for it.")
        }
        FlowError::Redirect(url) => Outcome::Client(url.into()),
        FlowError::PrimitiveError => Outcome::Failed,
    }
}

/// Runs oxide-auth's validation of the request.
pub async fn validate<'a>(state: &'a AppState, params: &AuthorizeParams) -> Result<Validated<'a>, Outcome> {
    let client = match params.get("client_id") {
        Some(id) => state.clients.find(&state.db, id).await.map_err(|e| {
            tracing::error!(error = %e, "cannot load the client");
            Outcome::Failed
        })?,
        None => None,
    };
    let Some(client) = client else {
        return Err(Outcome::Refused("The client is unknown."));
    };
    let mut endpoint = AuthorizationEndpoint::new(&state.db, Some(client.clone()));
    let pending = authorization_code(&mut endpoint, params).await.map_err(flow_error)?;
    Ok(Validated { endpoint, pending, client })
}

/// Where to sign in, coming back to this request afterwards. What forced the sign-in is taken out of the way
/// back (`prompt=login`, `max_age`, a mismatched `id_token_hint`): the fresh sign-in satisfies it, and its
/// `auth_time` is in the ID token for the client to check. Otherwise a sign-in that ends in another second,
/// or as another person, would be asked for again and again.
fn sign_in_url(mut params: AuthorizeParams) -> String {
    let rest: Vec<&str> =
        params.get("prompt").unwrap_or_default().split(' ').filter(|w| !w.is_empty() && *w != "login").collect();
    let rest = rest.join(" ");
    params.remove("prompt");
    if !rest.is_empty() {
        params.set("prompt", rest);
    }
    params.remove("max_age");
    params.remove("id_token_hint");
    let login_hint = params.get("login_hint").map(str::to_owned);
    let mut url = url::form_urlencoded::Serializer::new(String::from("/login?"));
    url.append_pair("return_to", &format!("{PATH}?{}", params.to_query()));
    if let Some(hint) = login_hint {
        url.append_pair("login_hint", &hint);
    }
    url.finish()
}

/// The `prompt` parameter (OIDC Core §3.1.2.1).
#[derive(Debug, Default, Clone, Copy)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

impl Prompt {
    fn parse(value: Option<&str>) -> Result<Prompt, &'static str> {
        let mut prompt = Prompt::default();
        for word in value.unwrap_or_default().split(' ').filter(|w| !w.is_empty()) {
            match word {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err("prompt has an unknown value"),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values");
        }
        Ok(prompt)
    }
}

async fn authorize(state: &AppState, session: &Session, params: AuthorizeParams) -> Outcome {
    let validated = match validate(state, &params).await {
        Ok(validated) => validated,
        Err(outcome) => return outcome,
    };
    let invalid = |why: &str| validated.error(ErrorCode::InvalidRequest, why, &params);

    if let Some(name) = params.refused().first() {
        return invalid(&format!("parameter {name} is repeated or too long"));
    }
    if !validated.client.allows_grant(GrantType::AuthorizationCode) {
        return validated.error(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
            &params,
        );
    }
    if params.get("request").is_some() {
        return validated.error(ErrorCode::RequestNotSupported, "request objects are not supported", &params);
    }
    if params.get("request_uri").is_some() {
        return validated.error(ErrorCode::RequestUriNotSupported, "request_uri is not supported", &params);
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return invalid("only response_mode=query is supported");
    }
    if !params.get("code_challenge").is_some_and(pkce::is_valid_s256_challenge) {
        return invalid("code_challenge must be 43 base64url characters (RFC 7636 section 4.2)");
    }
    let prompt = match Prompt::parse(params.get("prompt")) {
        Ok(prompt) => prompt,
        Err(why) => return invalid(why),
    };
    let max_age = match params.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => return invalid("max_age must be a non-negative number of seconds"),
    };
    // OIDC Core §3.1.2.1 (errata set 2): max_age=0 is prompt=login, even for a sign-in of this very second.
    let fresh_sign_in = prompt.login || max_age == Some(0);

    let now = state.clock.now().unix_timestamp();
    let login = match session::current(session).await {
        Ok(login) => login,
        Err(e) => {
            tracing::warn!(error = %e, "session store unavailable");
            return Outcome::Failed;
        }
    };
    // OIDC Core §3.1.2.1 id_token_hint: one of our ID tokens for this client; anything else is refused.
    let hint_sub = match params.get("id_token_hint") {
        None => None,
        Some(hint) => {
            let ring = state.keys.current();
            match verify_id_token_hint(&state.grant_context(&ring), hint) {
                Some(claims) if claims.aud == validated.client.id.as_str() => Some(claims.sub),
                _ => {
                    return validated.error(
                        ErrorCode::LoginRequired,
                        "the id_token_hint is not valid for this client",
                        &params,
                    );
                }
            }
        }
    };
    let login = match login {
        Some(login)
            if !fresh_sign_in
                && max_age.is_none_or(|age| now - login.auth_time <= age)
                && hint_sub.as_ref().is_none_or(|sub| sub == &login.user_id) =>
        {
            login
        }
        _ => {
            if prompt.none {
                return validated.error(ErrorCode::LoginRequired, "the user must sign in", &params);
            }
            return Outcome::Page(see_other(&sign_in_url(params.clone())));
        }
    };

    let granted = match state.db.grants().consent(&login.user_id, validated.client.id.as_str()).await {
        Ok(granted) => granted,
        Err(e) => {
            tracing::error!(error = %e, "cannot read consent");
            return Outcome::Failed;
        }
    };
    let remembered = granted.is_some_and(|granted| validated.requested_scope().is_subset(&granted));
    if prompt.consent || !remembered {
        if prompt.none {
            return validated.error(ErrorCode::ConsentRequired, "the user has not consented to this client", &params);
        }
        return Outcome::Page(consent::show(state, session, &validated, &login, params).await);
    }
    validated.issue_code(&login, &params, now).await
}
