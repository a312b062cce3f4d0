//! Token formats: JWT access tokens (RFC 9068) and ID tokens (OIDC Core §2), and the hashing of the opaque
//! secrets (codes, refresh tokens) that are stored only as hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::keys::{JwtType, SigningAlgorithm};
use super::random;

/// RFC 9068 §2.1: the `typ` header of JWT access tokens.
pub const ACCESS_TOKEN_TYP: &str = JwtType::AccessToken.as_str();

/// Access-token claims (RFC 9068 §2.2). User tokens also carry `auth_time` and `sid`; client-credentials
/// tokens have `sub` = `client_id` and neither.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AccessTokenClaims {
    /// Whether the token was issued to a person (through a code or refresh grant), not to a client alone.
    pub fn is_user_token(&self) -> bool {
        self.sid.is_some()
    }
}

/// ID-token claims (OIDC Core §2, §3.1.3.6), with the standard claims of the granted scopes (§5.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub at_hash: String,
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// OIDC Core §3.1.3.6 `at_hash`: the left half of the hash of the access token, with the hash of the ID
/// token's algorithm (SHA-256 for RS256/ES256, SHA-512 for Ed25519).
pub fn at_hash(access_token: &str, alg: SigningAlgorithm) -> String {
    use aws_lc_rs::digest;
    let algorithm = match alg {
        SigningAlgorithm::Rs256 | SigningAlgorithm::Es256 => &digest::SHA256,
        SigningAlgorithm::EdDsa => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, access_token.as_bytes());
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

/// A new token identifier (`jti`): 128 random bits.
pub fn new_id() -> String {
    random::token::<16>()
}

/// A new grant id or session id (`sid`): the milliseconds since 1970 in 12 hex digits, then 80 random bits.
///
/// Such ids sort by the time they were made, so a new grant's row and a new session's entries in the indexes
/// of `grants` land on the last pages of those indexes, which the writes of one commit share, rather than on a
/// random page each: every page a commit changes is written whole to SQLite's log (and PostgreSQL's, after a
/// checkpoint). Both ids are public (they name the grant in access tokens and the session in `sid` claims), so
/// showing when they were made gives nothing away; nothing reads that time back. Unique by their random part.
pub fn new_ordered_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{millis:012x}{}", random::token::<10>())
}

/// The `jti` of a user's access token: its grant's id, a dot, and an id of its own. Introspection and
/// userinfo find the grant in the signed token itself, so issuing one writes nothing.
pub fn user_access_token_id(grant_id: &str) -> String {
    format!("{grant_id}.{}", new_id())
}

/// The grant a user access token's `jti` names (see [`user_access_token_id`]).
pub fn grant_of_access_token_id(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(grant_id, _)| grant_id).filter(|grant_id| !grant_id.is_empty())
}

/// A new opaque secret (authorization code, refresh token): 256 random bits.
pub fn new_secret() -> String {
    random::token::<32>()
}

/// The stored form of an opaque secret: its SHA-256, base64url. The secret itself is never stored.
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_the_time_they_were_made() {
        let first = new_ordered_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_ordered_id();
        assert!(first < second, "{first} then {second}");
    }

    #[test]
    fn ordered_ids_of_one_millisecond_differ_by_their_random_part() {
        let (a, b) = (new_ordered_id(), new_ordered_id());
        assert_eq!(a.len(), 12 + 14, "12 hex digits and 80 bits of base64url: {a}");
        assert_ne!(a[12..], b[12..]);
    }

    #[test]
    fn a_user_access_token_id_names_its_grant() {
        let grant_id = new_ordered_id();
        let jti = user_access_token_id(&grant_id);
        assert_eq!(grant_of_access_token_id(&jti), Some(grant_id.as_str()));
        assert_ne!(jti, user_access_token_id(&grant_id), "each token has its own id");
        assert_eq!(grant_of_access_token_id(&new_id()), None, "a client token's id names no grant");
        assert_eq!(grant_of_access_token_id(".x"), None);
    }

    #[test]
    fn at_hash_matches_the_oidc_core_example() {
        // OIDC Core §A.3: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" → at_hash "77QmUPtjPfzWtF2AnpK9RQ"
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", SigningAlgorithm::Rs256),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn stored_hash_does_not_reveal_the_secret() {
        let secret = new_secret();
        assert_eq!(secret.len(), 43);
        assert_ne!(hash_secret(&secret), secret);
        assert_eq!(hash_secret(&secret), hash_secret(&secret));
    }
}
