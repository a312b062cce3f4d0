//! Wire parameters of the back-channel endpoints: an `application/x-www-form-urlencoded` body in which
//! every parameter appears at most once (RFC 6749 §3.2: "Request and response parameters MUST NOT be
//! included more than once").

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use crate::error::Error;

/// Whether the body is declared `application/x-www-form-urlencoded`.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// A form body's parameters, sorted by name, borrowing from the body unless a value had to be decoded.
#[derive(Debug, Default, Clone)]
pub struct FormParams<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> FormParams<'a> {
    /// Parses a form body, refusing another content type and repeated parameters.
    pub fn from_body(headers: &HeaderMap, body: &'a Bytes) -> Result<FormParams<'a>, Error> {
        if !is_form(headers) {
            return Err(Error::invalid_request("the body must be application/x-www-form-urlencoded"));
        }
        FormParams::parse(body)
    }

    pub fn parse(input: &'a [u8]) -> Result<FormParams<'a>, Error> {
        // form_urlencoded borrows every name and value that needs no decoding.
        let mut params: Vec<_> = url::form_urlencoded::parse(input).collect();
        params.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        if let Some(pair) = params.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(Error::invalid_request(format!("parameter {} is repeated", pair[0].0)));
        }
        Ok(FormParams(params))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, key: &str) -> Option<&str> {
        let found = self.0.binary_search_by(|(name, _)| name.as_ref().cmp(key)).ok()?;
        Some(self.0[found].1.as_ref()).filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key).ok_or_else(|| Error::invalid_request(format!("{key} is required")))
    }
}

/// The longest value an authorization parameter may have: room for any real `state`, `nonce` or
/// `id_token_hint`, while bounding what is copied into the database, headers and tokens.
pub const MAX_AUTHORIZE_VALUE: usize = 2048;

/// The parameters of an authorization request, from the query (GET) or the form body (POST). Parameters
/// given more than once are dropped and remembered (RFC 6749 §3.1: they MUST NOT be repeated), as are
/// values longer than [`MAX_AUTHORIZE_VALUE`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AuthorizeParams {
    params: BTreeMap<String, String>,
    #[serde(default)]
    refused: Vec<String>,
}

impl AuthorizeParams {
    pub fn parse(input: &str) -> AuthorizeParams {
        let mut params = BTreeMap::new();
        let mut refused = Vec::new();
        for (key, value) in url::form_urlencoded::parse(input.as_bytes()) {
            if value.len() > MAX_AUTHORIZE_VALUE || params.insert(key.to_string(), value.into_owned()).is_some() {
                refused.push(key.to_string());
            }
        }
        for key in &refused {
            params.remove(key);
        }
        refused.sort();
        refused.dedup();
        AuthorizeParams { params, refused }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The parameters that were repeated or too long, if any.
    pub fn refused(&self) -> &[String] {
        &self.refused
    }

    pub fn remove(&mut self, key: &str) {
        self.params.remove(key);
    }

    pub fn set(&mut self, key: &str, value: String) {
        self.params.insert(key.to_owned(), value);
    }

    /// The parameters as a query string, to come back to this request after signing in.
    pub fn to_query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(self.params.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_invalid() {
        let err = FormParams::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn parameters_are_found_whatever_their_order_and_decoded() {
        let params = FormParams::parse(b"scope=a+b&grant_type=client_credentials&client_id=my%20app").unwrap();
        assert_eq!(params.get("grant_type"), Some("client_credentials"));
        assert_eq!(params.get("scope"), Some("a b"));
        assert_eq!(params.get("client_id"), Some("my app"));
        assert_eq!(params.get("code"), None);
    }

    #[test]
    fn repeated_parameters_are_invalid_even_when_apart() {
        let err = FormParams::parse(b"code=1&grant_type=a&scope=x&code=2").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn empty_values_count_as_absent() {
        let params = FormParams::parse(b"scope=&code=x%20y").unwrap();
        assert_eq!(params.get("scope"), None);
        assert_eq!(params.get("code"), Some("x y"));
    }

    #[test]
    fn repeated_or_oversized_authorization_parameters_are_dropped_and_remembered() {
        let long = "x".repeat(MAX_AUTHORIZE_VALUE + 1);
        let params = AuthorizeParams::parse(&format!("max_age=1&max_age=1&state={long}&client_id=c"));
        assert_eq!(params.get("max_age"), None);
        assert_eq!(params.get("state"), None);
        assert_eq!(params.get("client_id"), Some("c"));
        assert_eq!(params.refused(), ["max_age", "state"]);
    }

    #[test]
    fn other_content_types_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(FormParams::from_body(&headers, &Bytes::from_static(b"{}")).is_err());
    }
}
