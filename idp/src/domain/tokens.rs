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
    format!("{}{}", time_prefix(), random::token::<10>())
}

/// The milliseconds since 1970 in 12 lowercase hex digits (until the year 10889), which sort as the times do.
fn time_prefix() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{millis:012x}")
}

/// The length of [`time_prefix`].
const TIME_PREFIX_LEN: usize = 12;

/// The `jti` of a user's access token: its grant's id, a dot, and an id of its own. Introspection and
/// userinfo find the grant in the signed token itself, so issuing one writes nothing.
pub fn user_access_token_id(grant_id: &str) -> String {
    format!("{grant_id}.{}", new_id())
}

/// The grant a user access token's `jti` names (see [`user_access_token_id`]).
pub fn grant_of_access_token_id(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(grant_id, _)| grant_id).filter(|grant_id| !grant_id.is_empty())
}

/// A new opaque secret (authorization code, refresh token): the time it was made, as [`new_ordered_id`]
/// begins, then 256 random bits (55 characters).
///
/// The time leads the secret's stored form too ([`hash_secret`]), so a new secret's entry lands on the last
/// page of its table's key index, which the writes of one commit share, rather than on a random page: a
/// refresh-token rotation or a code exchange logs one page fewer. The time gives nothing away (a grant's id
/// shows it already); the 256 bits are the secret.
pub fn new_secret() -> String {
    format!("{}{}", time_prefix(), random::token::<32>())
}

/// The length of a secret made by [`new_secret`]; those made before it were the 43 random characters alone.
const SECRET_LEN: usize = TIME_PREFIX_LEN + 43;

/// The stored form of an opaque secret, by which it is found: the SHA-256 of the whole secret in base64url,
/// after the time prefix of a secret made by [`new_secret`]. The secret itself is never stored.
///
/// A secret of the earlier form (43 random characters, no time) is stored as its hash alone, so codes and
/// refresh tokens issued before the time prefix keep working. Any other string gets the hash alone too, and
/// is then simply not found.
pub fn hash_secret(secret: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    let time = secret
        .get(..TIME_PREFIX_LEN)
        .filter(|prefix| secret.len() == SECRET_LEN && prefix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    let mut stored = String::with_capacity(SECRET_LEN);
    stored.push_str(time.unwrap_or_default());
    URL_SAFE_NO_PAD.encode_string(digest.as_ref(), &mut stored);
    stored
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
        assert_eq!(secret.len(), 12 + 43, "12 hex digits and 256 bits of base64url: {secret}");
        let stored = hash_secret(&secret);
        assert!(!stored.contains(&secret[12..]), "{stored}");
        assert_eq!(hash_secret(&secret), stored);
    }

    #[test]
    fn stored_hashes_sort_by_the_time_their_secrets_were_made() {
        let first = hash_secret(&new_secret());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = hash_secret(&new_secret());
        assert!(first < second, "{first} then {second}");
    }

    #[test]
    fn the_stored_hash_covers_the_time_prefix_too() {
        let secret = new_secret();
        let mut other_time = secret.clone();
        other_time.replace_range(11..12, if &secret[11..12] == "0" { "1" } else { "0" });
        assert_ne!(hash_secret(&secret)[12..], hash_secret(&other_time)[12..]);
    }

    #[test]
    fn a_secret_made_before_the_time_prefix_is_stored_as_its_hash_alone() {
        // The earlier form: 43 random characters. Its stored form must not change, or its token is lost.
        let earlier = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, earlier.as_bytes());
        assert_eq!(hash_secret(earlier), URL_SAFE_NO_PAD.encode(digest.as_ref()));
    }

    #[test]
    fn a_string_without_a_time_prefix_is_stored_as_its_hash_alone() {
        let not_hex = format!("zzzzzzzzzzzz{}", random::token::<32>());
        assert_eq!(hash_secret(&not_hex).len(), 43);
        assert_eq!(hash_secret("").len(), 43);
    }
}
