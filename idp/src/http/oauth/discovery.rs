//! OpenID Connect Discovery 1.0 §3 / RFC 8414: the provider metadata, serialised once at start-up.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::domain::clients::{AuthMethod, GrantType};
use crate::domain::scope;
use crate::state::AppState;

pub const PATH: &str = "/.well-known/openid-configuration";

/// Provider metadata (OIDC Discovery §3). Only what is supported is listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub end_session_endpoint: String,
    pub scopes_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// OIDC Back-Channel Logout 1.0 §2.1: logout tokens are sent to a client's `backchannel_logout_uri`,
    /// and they carry the session's `sid`.
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    pub claims_parameter_supported: bool,
}

impl ProviderMetadata {
    pub fn new(config: &Config) -> ProviderMetadata {
        ProviderMetadata {
            // Byte-equal to the configured issuer (no trailing slash): relying parties compare it exactly.
            issuer: config.issuer_id().to_owned(),
            authorization_endpoint: config.endpoint(super::authorize::PATH),
            token_endpoint: config.endpoint(super::token::PATH),
            jwks_uri: config.endpoint(super::jwks::PATH),
            userinfo_endpoint: config.endpoint(super::userinfo::PATH),
            introspection_endpoint: config.endpoint(super::introspect::PATH),
            revocation_endpoint: config.endpoint(super::revoke::PATH),
            end_session_endpoint: config.endpoint(super::end_session::PATH),
            scopes_supported: scope::SUPPORTED.to_vec(),
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query"],
            grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
            subject_types_supported: vec!["public"],
            // RS256 for every client unless it registered another of the configured algorithms.
            id_token_signing_alg_values_supported: config.signing_algs.iter().map(|a| a.as_str()).collect(),
            token_endpoint_auth_methods_supported: AuthMethod::SUPPORTED.iter().map(|m| m.as_str()).collect(),
            introspection_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post"],
            revocation_endpoint_auth_methods_supported: AuthMethod::SUPPORTED.iter().map(|m| m.as_str()).collect(),
            code_challenge_methods_supported: vec!["S256"],
            claims_supported: vec![
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "sid",
                "name",
                "email",
                "email_verified",
            ],
            authorization_response_iss_parameter_supported: true,
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            claims_parameter_supported: false,
        }
    }
}

/// The discovery document as served.
pub fn document(config: &Config) -> String {
    // A struct of strings and booleans always serialises.
    serde_json::to_string(&ProviderMetadata::new(config)).unwrap_or_default()
}

/// OpenID Provider configuration (OIDC Discovery 1.0 §4).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oidc",
    responses((status = 200, description = "Provider metadata", body = ProviderMetadata)))]
pub async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    super::public_document(&state, state.discovery_json.clone())
}
