//! The issuer's signing keys, from its JWK Set (RFC 7517 §5).
//!
//! Each published key is parsed into a [`DecodingKey`] once, when the set is fetched, and kept by `kid`
//! with the one algorithm the JWK names (RFC 7517 §4.4): a token may only be checked with its key's own
//! algorithm (RFC 8725 §3.1). The issuer publishes RS256, ES256 and EdDSA keys; keys of any other
//! algorithm, or without `kid` or `alg`, are left out.
//!
//! The set is fetched again every refresh interval (so keys the issuer stops publishing stop working) and
//! when a token names a `kid` the set does not hold, at most once per
//! [`ValidatorConfig::unknown_kid_refresh_interval`](super::ValidatorConfig): a flood of tokens with
//! made-up `kid`s costs the issuer one request per interval. Fetches are single-flight: tasks that find an
//! unknown `kid` while a fetch is under way wait for its result instead of starting their own. Requests
//! never read the network otherwise; they read the current set behind an `RwLock<Arc<…>>`, held only to
//! clone the `Arc`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::task::JoinHandle;

/// The most bytes a JWKS may have; ours is well under 4 KiB.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// One published verification key, parsed once.
pub struct VerificationKey {
    alg: Algorithm,
    key: DecodingKey,
}

impl VerificationKey {
    /// The only algorithm tokens of this key may use.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// The issuer's keys at one moment, by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, VerificationKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").field("kids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl KeySet {
    /// Parses a JWKS document. A key that cannot be used (no `kid`, an algorithm other than RS256, ES256 or
    /// EdDSA, a key type that does not fit its algorithm, `use` other than `sig`) is skipped with a debug
    /// log, so one odd key does not hide the others; a document that is not a JWKS at all is an error.
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, JwksError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(json).map_err(JwksError::Json)?;
        let mut keys = HashMap::with_capacity(document.keys.len());
        for value in document.keys {
            match parse_key(value) {
                Ok((kid, key)) => {
                    keys.insert(kid, key);
                }
                Err(reason) => tracing::debug!(reason, "JWKS key skipped"),
            }
        }
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// One JWK as a usable key with its `kid`, or why it is not usable.
fn parse_key(value: serde_json::Value) -> Result<(String, VerificationKey), &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a JWK this library reads")?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return Err("not a signature key");
    }
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(p)) if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (Some(KeyAlgorithm::EdDSA), AlgorithmParameters::OctetKeyPair(p)) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        (None, _) => return Err("no alg"),
        _ => return Err("an algorithm other than RS256, ES256 or EdDSA, or a key that does not fit it"),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "malformed key parameters")?;
    Ok((kid, VerificationKey { alg, key }))
}

/// Why a JWKS fetch failed; logged, never sent to a client.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("the issuer answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the body is not a JWK Set: {0}")]
    Json(#[source] serde_json::Error),
}

/// Where a token's `kid` was looked up after it was not found in the current set.
pub enum KidLookup {
    /// The set now holds the `kid` (fetched by this task or by another one meanwhile).
    Found(Arc<KeySet>),
    /// The issuer does not publish it, or a fetch was refused by the rate limit.
    Unknown,
    /// The last fetch failed, so whether the issuer publishes the `kid` cannot be told.
    Unavailable,
}

struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// The issuer's JWKS, fetched and kept current.
pub struct JwksSource {
    url: reqwest::Url,
    http: reqwest::Client,
    unknown_kid_interval: Duration,
    current: RwLock<Arc<KeySet>>,
    /// Serialises fetches; holds when the last one started and whether it failed.
    refresh: tokio::sync::Mutex<RefreshState>,
    fetches: AtomicU64,
}

impl JwksSource {
    /// A source with an empty key set; nothing is fetched until [`JwksSource::refresh`] or a lookup.
    pub fn new(url: reqwest::Url, http: reqwest::Client, unknown_kid_interval: Duration) -> JwksSource {
        JwksSource {
            url,
            http,
            unknown_kid_interval,
            current: RwLock::new(Arc::new(KeySet::default())),
            refresh: tokio::sync::Mutex::new(RefreshState { last_attempt: None, last_failed: false }),
            fetches: AtomicU64::new(0),
        }
    }

    /// The keys as last fetched.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the keys as last fetched hold `kid`: a look-up under the read lock, without taking the set.
    pub fn publishes(&self, kid: &str) -> bool {
        self.current.read().unwrap_or_else(PoisonError::into_inner).get(kid).is_some()
    }

    /// How many fetches were started (for metrics and tests).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Fetches the JWKS now and replaces the key set; on failure the previous set stays.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let mut state = self.refresh.lock().await;
        self.fetch_into(&mut state).await
    }

    /// Called when `kid` is not in `seen`, the set the caller looked in. Returns the set holding `kid` if
    /// it is published now, fetching the JWKS unless another task replaced the set meanwhile or the last
    /// fetch started less than the unknown-`kid` interval ago.
    pub async fn refresh_for_unknown_kid(&self, kid: &str, seen: &Arc<KeySet>) -> KidLookup {
        let mut state = self.refresh.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            // A fetch finished while this task waited for the lock: its result is as fresh as ours would be.
            return if current.get(kid).is_some() { KidLookup::Found(current) } else { self.unknown(&state) };
        }
        if state.last_attempt.is_some_and(|at| at.elapsed() < self.unknown_kid_interval) {
            tracing::debug!("unknown kid: JWKS refresh skipped, the last one was too recent");
            return self.unknown(&state);
        }
        tracing::debug!("unknown kid: refreshing the JWKS");
        // The failure is logged by `fetch_into` and recorded in `state`.
        let _ = self.fetch_into(&mut state).await;
        let current = self.current();
        if current.get(kid).is_some() { KidLookup::Found(current) } else { self.unknown(&state) }
    }

    fn unknown(&self, state: &RefreshState) -> KidLookup {
        if state.last_failed { KidLookup::Unavailable } else { KidLookup::Unknown }
    }

    async fn fetch_into(&self, state: &mut RefreshState) -> Result<(), JwksError> {
        state.last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS refreshed");
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                state.last_failed = false;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(url = %self.url, error = %error, "JWKS refresh failed; keeping the previous keys");
                state.last_failed = true;
                Err(error)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let mut response = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(JwksError::Http)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status()));
        }
        if response.content_length().is_some_and(|length| length > MAX_JWKS_BYTES as u64) {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(JwksError::Http)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks(&body)
    }

    /// Starts the periodic refresh: a fetch now, then one every `interval`. The task holds the source
    /// weakly and ends once the source is dropped.
    pub fn spawn_refresh(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let source: Weak<JwksSource> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(jwks) = source.upgrade() else { return };
                // A failure is logged and retried at the next tick, or earlier by an unknown kid.
                let _ = jwks.refresh().await;
                drop(jwks);
                tokio::time::sleep(interval).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(keys: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn supported_keys_are_kept_by_kid_with_their_algorithm() {
        let set = KeySet::from_jwks(&jwks(serde_json::json!([
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "ec", "alg": "ES256", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed", "alg": "EdDSA"},
        ])))
        .unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("ec").unwrap().alg(), Algorithm::ES256);
        assert_eq!(set.get("ed").unwrap().alg(), Algorithm::EdDSA);
    }

    #[test]
    fn unusable_keys_are_skipped_and_the_rest_kept() {
        let set = KeySet::from_jwks(&jwks(serde_json::json!([
            // Each row: why it is refused.
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},                 // a shared secret
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "no-alg"},           // alg missing
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "alg": "ES256"},            // kid missing
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "enc", "alg": "ES256", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "mismatch", "alg": "ES256"}, // key type ≠ alg
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "ps", "alg": "PS256"},// not ours
            {"kty": "XYZ", "kid": "odd", "alg": "ML-DSA-44"},                                // unknown to the parser
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "good", "alg": "EdDSA"},
        ])))
        .unwrap();
        assert_eq!(set.len(), 1, "{set:?}");
        assert!(set.get("good").is_some());
    }

    #[test]
    fn a_body_that_is_not_a_jwks_is_an_error() {
        assert!(matches!(KeySet::from_jwks(b"<html>"), Err(JwksError::Json(_))));
        assert!(matches!(KeySet::from_jwks(b"{\"keys\": 3}"), Err(JwksError::Json(_))));
    }
}
