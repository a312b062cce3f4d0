//! The OpenAPI document of every JSON route, served at `/openapi.json`, with Swagger UI at `/docs`.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Identity provider", description = "OAuth 2.0 / OpenID Connect issuer"),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::oauth::discovery::openid_configuration,
        super::oauth::jwks::jwks,
    ),
    tags(
        (name = "health", description = "Probes for orchestrators and load balancers"),
        (name = "oidc", description = "OpenID Connect discovery and keys"),
    )
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
