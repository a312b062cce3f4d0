//! The JSON Web Key Set (RFC 7517 §5): public parts of every published signing key, serialised once per
//! key change.

use axum::extract::State;
use axum::response::IntoResponse;

use crate::state::AppState;

pub const PATH: &str = "/jwks";

/// The issuer's public signing keys.
#[utoipa::path(get, path = "/jwks", tag = "oidc",
    responses((status = 200, description = "JWK Set (RFC 7517 §5): `kid`, `alg`, `use` and public parameters only",
        content_type = "application/json", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    super::public_document(&state, state.keys.current().jwks_json())
}
