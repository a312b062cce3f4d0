//! Client authentication at the back-channel endpoints (RFC 6749 §2.3): HTTP Basic
//! (`client_secret_basic`), body credentials (`client_secret_post`) or, for public clients, the bare
//! `client_id` (`none`). A client must use the method it registered; two methods at once are refused.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::params::FormParams;
use crate::domain::clients::{AuthMethod, Client};
use crate::error::{Error, ErrorCode};
use crate::state::AppState;

fn invalid_client() -> Error {
    Error::oauth(ErrorCode::InvalidClient, "client authentication failed")
}

/// The credentials a request presents.
#[derive(Debug, PartialEq, Eq)]
enum Presented {
    Basic { id: String, secret: String },
    Post { id: String, secret: String },
    None { id: String },
}

/// Form-decodes one part of the Basic credentials (RFC 6749 §2.3.1). Generated ids and secrets are
/// base64url, which needs no decoding.
fn form_decode(s: &str) -> String {
    if !s.bytes().any(|b| matches!(b, b'%' | b'+' | b'&')) {
        return s.to_owned();
    }
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn presented(headers: &HeaderMap, params: &FormParams<'_>) -> Result<Presented, Error> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().map_err(|_| invalid_client())?;
            let (scheme, credentials) = value.split_once(' ').ok_or_else(invalid_client)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(invalid_client());
            }
            let decoded = STANDARD.decode(credentials.trim()).map_err(|_| invalid_client())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid_client())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client)?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
            Some((form_decode(id), form_decode(secret)))
        }
    };
    match (basic, params.get("client_id"), params.get("client_secret")) {
        (Some(_), _, Some(_)) => Err(Error::invalid_request("use one client authentication method, not two")),
        (Some((id, _)), Some(body_id), None) if id != body_id => {
            Err(Error::invalid_request("client_id differs from the authenticated client"))
        }
        (Some((id, secret)), _, None) => Ok(Presented::Basic { id, secret }),
        (None, Some(id), Some(secret)) => Ok(Presented::Post { id: id.to_owned(), secret: secret.to_owned() }),
        (None, Some(id), None) => Ok(Presented::None { id: id.to_owned() }),
        (None, None, _) => Err(invalid_client()),
    }
}

/// Authenticates the calling client, or answers `invalid_client` (401).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &FormParams<'_>,
) -> Result<Arc<Client>, Error> {
    let presented = presented(headers, params)?;
    let (id, method, secret) = match &presented {
        Presented::Basic { id, secret } => (id, AuthMethod::ClientSecretBasic, Some(secret)),
        Presented::Post { id, secret } => (id, AuthMethod::ClientSecretPost, Some(secret)),
        Presented::None { id } => (id, AuthMethod::None, None),
    };
    let Some(client) = state.clients.find(&state.db, id).await? else {
        tracing::debug!("unknown client");
        return Err(invalid_client());
    };
    let verified = match secret {
        Some(secret) => client.verify_secret(secret),
        None => client.is_public(),
    };
    if client.auth_method != method || !verified {
        tracing::debug!(client = %client.id, method = method.as_str(), "client authentication refused");
        return Err(invalid_client());
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let got = presented(&basic("my%20app", "s%3Acret"), &FormParams::default()).unwrap();
        assert_eq!(got, Presented::Basic { id: "my app".into(), secret: "s:cret".into() });
    }

    #[test]
    fn plain_basic_credentials_are_taken_as_they_are() {
        let got = presented(&basic("Ab-9_x", "s3cr=t"), &FormParams::default()).unwrap();
        assert_eq!(got, Presented::Basic { id: "Ab-9_x".into(), secret: "s3cr=t".into() });
    }

    #[test]
    fn two_methods_at_once_are_invalid_request() {
        let params = FormParams::parse(b"client_id=a&client_secret=b").unwrap();
        assert_eq!(presented(&basic("a", "b"), &params).unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn no_credentials_is_invalid_client() {
        assert_eq!(presented(&HeaderMap::new(), &FormParams::default()).unwrap_err().code(), "invalid_client");
    }
}
