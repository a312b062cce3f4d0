//! The token endpoint (RFC 6749 §3.2, §5). Parses the request into a [`TokenRequest`], authenticates the
//! client, and hands the grant to its rules in `domain::grants`. Every answer is `Cache-Control: no-store`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::client_auth;
use super::params::FormParams;
use crate::domain::clients::GrantType;
use crate::domain::grants::authorization_code::{self, CodeRequest};
use crate::domain::grants::issue::TokenResponse;
use crate::domain::grants::{client_credentials, refresh_token};
use crate::error::{Error, ErrorCode};
use crate::http::extract::HeadersAndBody;
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
    pub fn parse(params: &'a FormParams<'_>) -> Result<TokenRequest<'a>, Error> {
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
    HeadersAndBody { headers, body }: HeadersAndBody,
) -> Result<TokenResponse, Error> {
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
    Ok(response)
}

/// RFC 6749 §5.1: the token response as `application/json`, written by hand: its values are JWS compact
/// serialisations, base64url tokens and scope tokens, which JSON never escapes, so they are copied whole
/// instead of going through serde_json's escaping byte by byte (the longest part of answering a client
/// credentials request after the signature). The bytes are those serde_json writes for the same response.
impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], token_json(&self)).into_response()
    }
}

fn token_json(response: &TokenResponse) -> String {
    use std::fmt::Write;
    let tokens = response.access_token.len() + response.id_token.as_ref().map_or(0, String::len);
    let mut json = String::with_capacity(160 + tokens + response.scope.len());
    json.push_str("{\"access_token\":");
    push_json_str(&mut json, &response.access_token);
    json.push_str(",\"token_type\":");
    push_json_str(&mut json, response.token_type);
    // Writing to a String cannot fail.
    let _ = write!(json, ",\"expires_in\":{},\"scope\":", response.expires_in);
    push_json_str(&mut json, &response.scope);
    if let Some(refresh_token) = &response.refresh_token {
        json.push_str(",\"refresh_token\":");
        push_json_str(&mut json, refresh_token);
    }
    if let Some(id_token) = &response.id_token {
        json.push_str(",\"id_token\":");
        push_json_str(&mut json, id_token);
    }
    json.push('}');
    json
}

/// Appends `value` as a JSON string: copied as it is when nothing in it needs escaping (RFC 8259 §7),
/// else escaped by serde_json.
fn push_json_str(json: &mut String, value: &str) {
    // No early exit, so that the check runs over whole vectors of bytes.
    let plain = value.bytes().fold(true, |plain, b| plain & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        json.push('"');
        json.push_str(value);
        json.push('"');
    } else {
        // Serialising a string cannot fail.
        json.push_str(&serde_json::to_string(value).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_json_is_what_serde_json_writes() {
        let plain = TokenResponse {
            access_token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_".into(),
            token_type: "Bearer",
            expires_in: 300,
            scope: "media.read openid".into(),
            refresh_token: None,
            id_token: None,
        };
        let full = TokenResponse {
            expires_in: -1,
            scope: "needs \"escaping\" \\ \u{1} \u{7f} é".into(),
            refresh_token: Some("r3fr-_sh".into()),
            id_token: Some("a.b.c".into()),
            ..plain.clone()
        };
        for response in [plain, full] {
            assert_eq!(token_json(&response), serde_json::to_string(&response).unwrap());
        }
    }
}
