//! PKCE (RFC 7636), S256 only. oxide-auth's `Pkce` records the challenge at the authorization endpoint and
//! verifies it here; this module adds the syntax checks the RFC requires and maps a failure to
//! `invalid_grant` (RFC 7636 §4.6), where oxide-auth would answer `invalid_request`.

use std::borrow::Cow;

use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::primitives::grant::Value;

use crate::error::{Error, ErrorCode};

/// RFC 7636 §4.2: an S256 challenge is BASE64URL(SHA256(verifier)): exactly 43 base64url characters.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: a verifier is 43 to 128 unreserved characters.
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What the authorization endpoint stores with a code for an S256 `challenge`: oxide-auth's record of it, as
/// [`verify`] reads it. `None` for a challenge that is not S256's 43 base64url characters.
pub fn stored_s256_challenge(challenge: &str) -> Option<String> {
    if !is_valid_s256_challenge(challenge) {
        return None;
    }
    Pkce::required()
        .challenge(Some(Cow::Borrowed("S256")), Some(Cow::Borrowed(challenge)))
        .ok()
        .flatten()
        .and_then(|value| value.into_private_value().ok().flatten())
}

/// Checks `verifier` against the challenge stored with the code (as oxide-auth encoded it).
pub fn verify(stored_challenge: Option<&str>, verifier: Option<&str>) -> Result<(), Error> {
    let invalid = |why: &'static str| Error::oauth(ErrorCode::InvalidGrant, why);
    match (stored_challenge, verifier) {
        (None, Some(_)) => Err(invalid("a code_verifier was sent but the authorization request had no code_challenge")),
        (_, Some(v)) if !is_valid_verifier(v) => Err(invalid("the code_verifier is malformed (RFC 7636 §4.1)")),
        (stored, verifier) => Pkce::required()
            .verify(stored.map(|s| Value::private(Some(s.to_owned()))), verifier.map(Cow::Borrowed))
            .map_err(|()| invalid("the code_verifier does not match the code_challenge")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn stored() -> String {
        stored_s256_challenge(CHALLENGE).unwrap()
    }

    #[test]
    fn the_rfc_example_verifies() {
        assert!(is_valid_s256_challenge(CHALLENGE));
        assert!(verify(Some(&stored()), Some(VERIFIER)).is_ok());
    }

    #[test]
    fn wrong_missing_or_unexpected_verifiers_are_invalid_grant() {
        let other = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        for (stored, verifier, why) in [
            (Some(stored()), Some(other), "wrong verifier"),
            (Some(stored()), None, "missing verifier"),
            (Some(stored()), Some("short"), "malformed verifier"),
            (None, Some(VERIFIER), "verifier without a challenge"),
            (None, None, "no PKCE at all"),
        ] {
            let err = verify(stored.as_deref(), verifier).unwrap_err();
            assert_eq!(err.code(), "invalid_grant", "{why}");
        }
    }

    #[test]
    fn a_malformed_challenge_is_not_stored() {
        assert_eq!(stored_s256_challenge("short"), None);
        assert_eq!(stored_s256_challenge(&format!("{}=", &CHALLENGE[..42])), None);
    }

    #[test]
    fn plain_is_refused_at_the_challenge() {
        assert!(Pkce::required().challenge(Some(Cow::Borrowed("plain")), Some(Cow::Borrowed(CHALLENGE))).is_err());
    }
}
