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
        super::api::account::list_sessions,
        super::api::account::end_session,
        super::api::account::end_other_sessions,
        super::api::account::list_apps,
        super::api::account::revoke_app,
        super::api::admin::list_sessions,
        super::api::admin::end_session,
        super::api::admin::end_all_sessions,
        super::api::admin::list_apps,
        super::api::admin::revoke_app,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Probes for orchestrators and load balancers"),
        (name = "oidc", description = "OpenID Connect discovery, keys and user info"),
        (name = "oauth", description = "OAuth 2.0 token, introspection and revocation endpoints"),
        (name = "account", description = "The caller's sessions and apps (session cookie, or a token with scope account)"),
        (name = "admin", description = "Any user's sessions and apps (client-credentials token with scope admin)"),
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
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new("idp_session"),
            )),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
