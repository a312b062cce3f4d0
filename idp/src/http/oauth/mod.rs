//! Protocol endpoints (OAuth 2.0 / OpenID Connect).

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub mod discovery;
pub mod jwks;

pub fn router() -> Router<AppState> {
    Router::new().route(discovery::PATH, get(discovery::openid_configuration)).route(jwks::PATH, get(jwks::jwks))
}
