//! Validation of JWT access tokens as RFC 9068 §4 asks of a resource server, with the verification cache in
//! front of it.
//!
//! In order, cheapest first (a token is refused at the first failure, with `invalid_token`):
//! 1. the cache: a token verified before is accepted without another signature check until its `exp` plus
//!    the leeway, and refused from then on; and only while the JWKS still publishes the key that signed it
//!    (a cached token of a key the issuer withdrew is checked again, and refused with its key);
//! 2. the JOSE header: `typ` is `at+jwt` or `application/at+jwt`, case-insensitively (RFC 9068 §4 step 1,
//!    §2.1); `kid` names a published key (fetched once if it is new, see [`jwks`](super::jwks)); `alg` is that
//!    key's own algorithm, never a choice of the header (RFC 8725 §3.1; `none` does not even parse);
//! 3. the signature, with the key parsed when the JWKS was fetched (RFC 9068 §4 step 3, RFC 7515 §5.2);
//! 4. the claims: `iss`, `sub`, `aud`, `exp`, `iat`, `client_id` and `jti` present (RFC 9068 §2.2); `iss`
//!    equal to the configured issuer byte for byte (§4 step 2, RFC 8725 §3.8); `aud` containing this API's
//!    identifier (§4 step 4, RFC 8725 §3.9); `exp` after now less the leeway (§4 step 5, RFC 7519 §4.1.4,
//!    which allows "some small leeway" for clock skew); `iat` and `nbf` not later than now plus the leeway.
//!
//! Header members that point elsewhere for keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored: keys come only
//! from the configured JWKS (RFC 8725 §3.10).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use super::cache::{Lookup, TokenCache, TokenKey};
use super::config::{ConfigError, ValidatorConfig};
use super::error::{AuthError, InvalidToken};
use super::jwks::{JwksError, JwksSource, KeySet, KidLookup};

/// RFC 9068 §2.1: the `typ` of JWT access tokens, and its media-type form (RFC 7515 §4.1.9).
const ACCESS_TOKEN_TYP: &str = "at+jwt";
const ACCESS_TOKEN_MEDIA_TYPE: &str = "application/at+jwt";

/// Tokens longer than this are refused before any work: ours are under 1 KiB, and a bound keeps a client
/// from making the server hash and decode megabytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A `kid` longer than this is not one the issuer would publish (ours are 43-character RFC 7638
/// thumbprints); it is refused without a JWKS fetch.
const MAX_KID_BYTES: usize = 128;

/// The space-separated scopes of a token (RFC 9068 §2.2.3, RFC 6749 §3.3), compared case-sensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Box<[String]>);

impl Scopes {
    pub fn parse(scope: &str) -> Scopes {
        Scopes(scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Who a valid access token speaks for: the claims a route needs, only obtainable from [`Validator`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The user, or for client-credentials tokens the client itself (RFC 9068 §2.2).
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    pub scopes: Scopes,
    /// The issuer's session id; present on tokens issued to a person.
    pub sid: Option<String>,
    /// When the person signed in (Unix seconds), on tokens issued to a person.
    pub auth_time: Option<i64>,
    /// Unix seconds.
    pub exp: i64,
    /// Unix seconds.
    pub iat: i64,
    pub jti: String,
    /// The `channels` claim exactly as the token carries it; its shape is defined with the channel roles.
    pub channels: Option<serde_json::Value>,
}

impl Principal {
    /// Whether the token was issued to a person (code or refresh grant), not to a client alone.
    pub fn is_user(&self) -> bool {
        self.sid.is_some()
    }

    /// `Ok` if the token carries `scope`; otherwise `insufficient_scope` naming it (RFC 6750 §3.1).
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.scopes.contains(scope) { Ok(()) } else { Err(AuthError::InsufficientScope { scope: scope.to_owned() }) }
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(aud) => aud == audience,
            Audience::Many(auds) => auds.iter().any(|a| a == audience),
        }
    }
}

/// The claims of an RFC 9068 access token as they arrive; a required claim that is missing, or of the
/// wrong JSON type, fails deserialisation. `iss` is a string: an array would not be "exactly" the issuer.
#[derive(Deserialize)]
struct AccessTokenClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    client_id: String,
    jti: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    channels: Option<serde_json::Value>,
}

/// One `jsonwebtoken` validation per algorithm, built once. It checks the algorithm and the signature
/// only; the claims are checked here, against the injected time.
struct Validations {
    rs256: Validation,
    es256: Validation,
    eddsa: Validation,
}

impl Validations {
    fn new() -> Validations {
        let signature_only = |alg| {
            let mut validation = Validation::new(alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation
        };
        Validations {
            rs256: signature_only(Algorithm::RS256),
            es256: signature_only(Algorithm::ES256),
            eddsa: signature_only(Algorithm::EdDSA),
        }
    }

    /// `None` for algorithms the key set never holds.
    fn get(&self, alg: Algorithm) -> Option<&Validation> {
        match alg {
            Algorithm::RS256 => Some(&self.rs256),
            Algorithm::ES256 => Some(&self.es256),
            Algorithm::EdDSA => Some(&self.eddsa),
            _ => None,
        }
    }
}

/// A verified token as the cache keeps it: its principal, and the `kid` of the key that signed it.
struct Verified {
    principal: Arc<Principal>,
    kid: Box<str>,
}

/// Validates the access tokens of one issuer for one API. Share it (`Arc<Validator>`) between requests.
pub struct Validator {
    issuer: String,
    audience: String,
    leeway_secs: i64,
    jwks: Arc<JwksSource>,
    cache: TokenCache<Arc<Verified>>,
    validations: Validations,
    signature_checks: AtomicU64,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator").field("issuer", &self.issuer).field("audience", &self.audience).finish()
    }
}

impl Validator {
    /// A validator with no keys yet: they are fetched by [`Validator::refresh_keys`], by the task of
    /// [`Validator::start`], or when the first token arrives.
    pub fn new(config: ValidatorConfig) -> Result<Validator, ConfigError> {
        let url = config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("media-api/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ConfigError::HttpClient)?;
        Ok(Validator {
            jwks: Arc::new(JwksSource::new(url, http, config.unknown_kid_refresh_interval)),
            cache: TokenCache::new(config.cache_capacity),
            validations: Validations::new(),
            signature_checks: AtomicU64::new(0),
            leeway_secs: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            issuer: config.issuer,
            audience: config.audience,
        })
    }

    /// Builds the validator and starts its periodic JWKS refresh (the first fetch at once). Call inside a
    /// Tokio runtime. The refresh task ends when the validator is dropped.
    pub fn start(config: ValidatorConfig) -> Result<Arc<Validator>, ConfigError> {
        let interval = config.refresh_interval;
        let validator = Arc::new(Validator::new(config)?);
        validator.jwks.spawn_refresh(interval);
        Ok(validator)
    }

    /// Fetches the JWKS now, for a start-up that wants the keys before it serves.
    pub async fn refresh_keys(&self) -> Result<(), JwksError> {
        self.jwks.refresh().await
    }

    pub fn jwks(&self) -> &JwksSource {
        &self.jwks
    }

    /// How many signatures were checked, i.e. how many tokens went past the cache (for metrics and tests).
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// How many verified tokens the cache holds.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Validates a bearer access token at `now`: the token's principal, or why it is refused.
    pub async fn validate(&self, token: &str, now: OffsetDateTime) -> Result<Arc<Principal>, AuthError> {
        let now = now.unix_timestamp();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::Malformed.into());
        }
        let key = TokenKey::of(token);
        match self.cache.get(&key, now) {
            Lookup::Hit(verified) if self.jwks.publishes(&verified.kid) => {
                return Ok(verified.principal.clone());
            }
            Lookup::Expired => return Err(InvalidToken::Expired.into()),
            // A key no longer published: the token is checked again, and refused with its key.
            Lookup::Hit(_) | Lookup::Miss => {}
        }
        let verified = Arc::new(self.verify(token, now).await.inspect_err(|error| {
            tracing::debug!(%error, "access token refused");
        })?);
        let principal = verified.principal.clone();
        self.cache.insert(key, self.refused_from(principal.exp), verified, now);
        Ok(principal)
    }

    /// The full check of a token not in the cache.
    async fn verify(&self, token: &str, now: i64) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken::Malformed)?;
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) && !typ.eq_ignore_ascii_case(ACCESS_TOKEN_MEDIA_TYPE) {
            return Err(InvalidToken::WrongType.into());
        }
        let kid = header.kid.as_deref().filter(|kid| kid.len() <= MAX_KID_BYTES).ok_or(InvalidToken::UnknownKey)?;
        let keys = self.keys_with(kid).await?;
        let key = keys.get(kid).ok_or(InvalidToken::UnknownKey)?;
        if header.alg != key.alg() {
            return Err(InvalidToken::AlgorithmMismatch.into());
        }
        let validation = self.validations.get(key.alg()).ok_or(InvalidToken::AlgorithmMismatch)?;
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let claims = jsonwebtoken::decode::<AccessTokenClaims>(token, key.decoding_key(), validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => InvalidToken::BadSignature,
                ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    InvalidToken::BadClaims
                }
                ErrorKind::InvalidAlgorithm => InvalidToken::AlgorithmMismatch,
                _ => InvalidToken::Malformed,
            })?
            .claims;
        self.check_claims(&claims, now)?;
        let principal = Principal {
            scopes: claims.scope.as_deref().map(Scopes::parse).unwrap_or_default(),
            sub: claims.sub,
            client_id: claims.client_id,
            sid: claims.sid,
            auth_time: claims.auth_time,
            exp: claims.exp,
            iat: claims.iat,
            jti: claims.jti,
            channels: claims.channels,
        };
        Ok(Verified { principal: Arc::new(principal), kid: kid.into() })
    }

    /// When a token that expires at `exp` is refused: the leeway after it, for a clock behind the issuer's. The
    /// cache keeps a token until the same second, so a cached and a freshly checked token are refused alike.
    fn refused_from(&self, exp: i64) -> i64 {
        exp.saturating_add(self.leeway_secs)
    }

    /// RFC 9068 §4 steps 2, 4 and 5 on the verified claims.
    fn check_claims(&self, claims: &AccessTokenClaims, now: i64) -> Result<(), InvalidToken> {
        if claims.iss != self.issuer {
            return Err(InvalidToken::WrongIssuer);
        }
        if !claims.aud.contains(&self.audience) {
            return Err(InvalidToken::WrongAudience);
        }
        if self.refused_from(claims.exp) <= now {
            return Err(InvalidToken::Expired);
        }
        let latest = now.saturating_add(self.leeway_secs);
        if claims.iat > latest || claims.nbf.is_some_and(|nbf| nbf > latest) {
            return Err(InvalidToken::NotYetValid);
        }
        Ok(())
    }

    /// The current key set if it holds `kid`; otherwise the outcome of a (rate-limited) JWKS refresh.
    async fn keys_with(&self, kid: &str) -> Result<Arc<KeySet>, AuthError> {
        let keys = self.jwks.current();
        if keys.get(kid).is_some() {
            return Ok(keys);
        }
        match self.jwks.refresh_for_unknown_kid(kid, &keys).await {
            KidLookup::Found(keys) => Ok(keys),
            KidLookup::Unknown => Err(InvalidToken::UnknownKey.into()),
            KidLookup::Unavailable => Err(AuthError::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_space_separated_and_case_sensitive() {
        let scopes = Scopes::parse("media.read  donations.write");
        assert!(scopes.contains("media.read") && scopes.contains("donations.write"));
        assert!(!scopes.contains("Media.read"));
        assert!(!scopes.contains(""));
        assert_eq!(scopes.iter().count(), 2);
    }

    #[test]
    fn audience_may_be_one_string_or_an_array() {
        let one: Audience = serde_json::from_str("\"media\"").unwrap();
        let many: Audience = serde_json::from_str("[\"other\", \"media\"]").unwrap();
        assert!(one.contains("media") && many.contains("media"));
        assert!(!one.contains("medi") && !many.contains("donations"));
    }
}
