//! The token endpoint (RFC 6749 §3.2, §5). Parses the request into a [`TokenRequest`], authenticates the
//! client, and hands the grant to its rules in `domain::grants`. Every answer is `Cache-Control: no-store`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;

use super::client_auth;
use super::params::FormParams;
use crate::domain::clients::GrantType;
use crate::domain::grants::authorization_code::{self, CodeRequest};
use crate::domain::grants::issue::TokenResponse;
use crate::domain::grants::{client_credentials, refresh_token};
use crate::error::{Error, ErrorCode};
use crate::state::AppState;

pub const PATH: &str = "/token";

/// A token request, by grant type.
#[derive(Debug)]
pub enum TokenRequest<'a> {
    AuthorizationCode(CodeRequest<'a>),
    RefreshToken { refresh_token: &'a str, scope: Option<&'a str> },
    ClientCredentials { scope: Option<&'a str> },
}

impl<'a> TokenRequest<'a> {
    pub fn parse(params: &'a FormParams) -> Result<TokenRequest<'a>, Error> {
        match params.require("grant_type")? {
            "authorization_code" => Ok(TokenRequest::AuthorizationCode(CodeRequest {
                code: params.require("code")?,
                redirect_uri: params.get("redirect_uri"),
                code_verifier: params.get("code_verifier"),
            })),
            "refresh_token" => Ok(TokenRequest::RefreshToken {
                refresh_token: params.require("refresh_token")?,
                scope: params.get("scope"),
            }),
            "client_credentials" => Ok(TokenRequest::ClientCredentials { scope: params.get("scope") }),
            "password" => Err(Error::oauth(
                ErrorCode::UnsupportedGrantType,
                "the password grant is not supported (RFC 9700 section 2.4)",
            )),
            other => {
                let shown: String = other.chars().take(64).collect();
                Err(Error::oauth(ErrorCode::UnsupportedGrantType, format!("grant_type {shown} is not supported")))
            }
        }
    }

    fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode(_) => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
            TokenRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }
}

/// Issues tokens (RFC 6749 §4.1.3, §4.4, §6; OIDC Core §3.1.3).
#[utoipa::path(post, path = "/token", tag = "oauth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "grant_type and its parameters (RFC 6749 §4.1.3, §4.4.2, §6)"),
    responses(
        (status = 200, description = "Tokens (RFC 6749 §5.1)", body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type or invalid_scope", body = crate::error::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::error::ErrorBody),
    ))]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TokenResponse>, Error> {
    let params = FormParams::from_body(&headers, &body)?;
    let request = TokenRequest::parse(&params)?;
    let client = client_auth::authenticate(&state, &headers, &params).await?;
    if !client.allows_grant(request.grant_type()) {
        return Err(Error::oauth(
            ErrorCode::UnauthorizedClient,
            format!("this client may not use {}", request.grant_type().as_str()),
        ));
    }
    let ring = state.keys.current();
    let ctx = state.grant_context(&ring);
    let response = match request {
        TokenRequest::AuthorizationCode(code) => authorization_code::exchange(&ctx, &client, code).await?,
        TokenRequest::RefreshToken { refresh_token, scope } => {
            refresh_token::exchange(&ctx, &client, refresh_token, scope).await?
        }
        TokenRequest::ClientCredentials { scope } => client_credentials::issue(&ctx, &client, scope)?,
    };
    Ok(Json(response))
}
