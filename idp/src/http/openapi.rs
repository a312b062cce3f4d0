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
        super::oauth::token::token,
        super::oauth::introspect::introspect,
        super::oauth::revoke::revoke,
        super::oauth::userinfo::get,
        super::oauth::userinfo::post,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Probes for orchestrators and load balancers"),
        (name = "oidc", description = "OpenID Connect discovery, keys and user info"),
        (name = "oauth", description = "OAuth 2.0 token, introspection and revocation endpoints"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme (RFC 6750) used by the routes that take an access token.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
