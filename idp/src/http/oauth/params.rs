//! Wire parameters of the back-channel endpoints: an `application/x-www-form-urlencoded` body in which
//! every parameter appears at most once (RFC 6749 §3.2: "Request and response parameters MUST NOT be
//! included more than once").

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use crate::error::Error;

#[derive(Debug, Default, Clone)]
pub struct FormParams(BTreeMap<String, String>);

impl FormParams {
    /// Parses a form body, refusing another content type and repeated parameters.
    pub fn from_body(headers: &HeaderMap, body: &Bytes) -> Result<FormParams, Error> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(Error::invalid_request("the body must be application/x-www-form-urlencoded"));
        }
        FormParams::parse(body)
    }

    pub fn parse(input: &[u8]) -> Result<FormParams, Error> {
        let mut params = BTreeMap::new();
        for (key, value) in url::form_urlencoded::parse(input) {
            if params.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(Error::invalid_request(format!("parameter {key} is repeated")));
            }
        }
        Ok(FormParams(params))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key).ok_or_else(|| Error::invalid_request(format!("{key} is required")))
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
    fn empty_values_count_as_absent() {
        let params = FormParams::parse(b"scope=&code=x%20y").unwrap();
        assert_eq!(params.get("scope"), None);
        assert_eq!(params.get("code"), Some("x y"));
    }

    #[test]
    fn other_content_types_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(FormParams::from_body(&headers, &Bytes::from_static(b"{}")).is_err());
    }
}
