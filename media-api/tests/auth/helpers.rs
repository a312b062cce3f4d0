//! Shared set-up: keys and tokens made by the issuer's own code (`idp::domain::keys`), and a stand-in issuer
//! serving a JWKS that a test can change, fail on purpose and count fetches of.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use idp::domain::keys::{JwtType, KeyRing, SigningAlgorithm, SigningKey};
use idp::domain::tokens::{AccessTokenClaims, new_id};
use jsonwebtoken::{EncodingKey, Header};
use media_api::auth::{Validator, ValidatorConfig};
use time::OffsetDateTime;

pub const AUDIENCE: &str = "https://media.example/api";
/// The fixed "now" of the tests, Unix seconds.
pub const NOW: i64 = 1_800_000_000;
pub const TTL: i64 = 300;
/// The validator's leeway for clock skew, in seconds: a token is accepted until this long after its `exp`.
pub const LEEWAY: i64 = ValidatorConfig::DEFAULT_LEEWAY.as_secs() as i64;

pub fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

pub fn now() -> OffsetDateTime {
    at(NOW)
}

/// A signing key of the issuer, with its PEM so that a copy can go into a published key ring.
pub struct TestKey {
    pub key: SigningKey,
    pem: String,
}

impl TestKey {
    pub fn generate(alg: SigningAlgorithm) -> TestKey {
        let (key, pem) = SigningKey::generate(alg, now()).unwrap();
        TestKey { key, pem }
    }

    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// An access token as the issuer signs it: `typ: at+jwt`, this key's `kid` and algorithm.
    pub fn sign(&self, claims: &AccessTokenClaims) -> String {
        self.key.sign(JwtType::AccessToken, claims).unwrap()
    }

    /// This key as jsonwebtoken signs with it.
    pub fn encoding_key(&self) -> EncodingKey {
        let pem = self.pem.as_bytes();
        match self.key.alg() {
            SigningAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem),
            SigningAlgorithm::Es256 => EncodingKey::from_ec_pem(pem),
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem),
        }
        .unwrap()
    }

    /// The header the issuer writes: `typ: at+jwt`, this key's `kid` and algorithm; tests change a member.
    pub fn header(&self) -> Header {
        Header { typ: Some("at+jwt".into()), kid: Some(self.kid().to_owned()), ..Header::new(self.key.alg().jwt()) }
    }

    /// Any header over any claims, signed by this key through jsonwebtoken (the issuer's own signer only
    /// writes the headers and claims it defines).
    pub fn sign_with_header(&self, header: &Header, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding_key()).unwrap()
    }

    /// A token with arbitrary claims (for missing or odd ones) and any `typ`.
    pub fn sign_value(&self, typ: &str, claims: &serde_json::Value) -> String {
        self.sign_with_header(&Header { typ: Some(typ.to_owned()), ..self.header() }, claims)
    }

    fn copy(&self) -> SigningKey {
        SigningKey::from_pem(self.key.meta.clone(), self.pem.as_bytes()).unwrap()
    }
}

/// The claims the issuer puts in a user's access token for this API, valid from [`NOW`] for [`TTL`].
pub fn claims(issuer: &str) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: issuer.to_owned(),
        sub: "user-1".into(),
        aud: AUDIENCE.into(),
        client_id: "media-app".into(),
        scope: "openid media.read".into(),
        exp: NOW + TTL,
        iat: NOW,
        jti: new_id(),
        auth_time: Some(NOW - 30),
        sid: Some("session-1".into()),
    }
}

#[derive(Default)]
struct JwksState {
    body: Mutex<Vec<u8>>,
    failing: AtomicBool,
    fetches: AtomicUsize,
    delay: Mutex<Duration>,
}

/// A stand-in issuer on 127.0.0.1 serving `/jwks`. Its URL is the issuer identifier.
pub struct TestIssuer {
    pub url: String,
    state: Arc<JwksState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> impl IntoResponse {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if state.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], b"down".to_vec());
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], state.body.lock().unwrap().clone())
}

impl TestIssuer {
    /// Starts the issuer publishing `keys`.
    pub async fn start(keys: &[&TestKey]) -> TestIssuer {
        let state = Arc::new(JwksState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route("/jwks", get(serve_jwks)).with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let issuer = TestIssuer { url, state, shutdown: Some(tx) };
        issuer.publish(keys);
        issuer
    }

    /// Replaces the published JWKS by the issuer's own JWKS document of `keys`.
    pub fn publish(&self, keys: &[&TestKey]) {
        let ring = KeyRing::new(keys.iter().map(|k| k.copy()).collect(), now(), Duration::from_secs(3600));
        *self.state.body.lock().unwrap() = ring.jwks_json().to_vec();
    }

    /// Serves `body` as the JWKS, whatever it is.
    pub fn publish_raw(&self, body: &[u8]) {
        *self.state.body.lock().unwrap() = body.to_vec();
    }

    /// Makes `/jwks` answer 500 (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes every `/jwks` answer wait, so that concurrent requests overlap a fetch.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// How many times `/jwks` was requested.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// [`claims`] of this issuer.
    pub fn claims(&self) -> AccessTokenClaims {
        claims(&self.url)
    }

    /// The validator's settings for tokens of this issuer meant for [`AUDIENCE`].
    pub fn config(&self) -> ValidatorConfig {
        ValidatorConfig::new(&self.url, AUDIENCE)
    }

    /// A validator with the default settings whose keys have been fetched once.
    pub async fn validator(&self) -> Validator {
        self.validator_with(self.config()).await
    }

    pub async fn validator_with(&self, config: ValidatorConfig) -> Validator {
        let validator = Validator::new(config).unwrap();
        validator.refresh_keys().await.unwrap();
        validator
    }
}

/// The set-up most tests share: one key, an issuer publishing it, and a validator that has fetched it.
pub struct Setup {
    pub key: TestKey,
    pub issuer: TestIssuer,
    pub validator: Validator,
}

impl Setup {
    /// With the default settings.
    pub async fn new(alg: SigningAlgorithm) -> Setup {
        Setup::with_config(alg, |config| config).await
    }

    /// With the default settings as `configure` changes them.
    pub async fn with_config(
        alg: SigningAlgorithm,
        configure: impl FnOnce(ValidatorConfig) -> ValidatorConfig,
    ) -> Setup {
        let key = TestKey::generate(alg);
        let issuer = TestIssuer::start(&[&key]).await;
        let validator = issuer.validator_with(configure(issuer.config())).await;
        Setup { key, issuer, validator }
    }

    /// [`claims`] of this issuer.
    pub fn claims(&self) -> AccessTokenClaims {
        self.issuer.claims()
    }

    /// The same claims as JSON, for a test to remove or change one.
    pub fn claims_json(&self) -> serde_json::Value {
        serde_json::to_value(self.claims()).unwrap()
    }

    /// A valid access token of [`Setup::claims`] (a new `jti` each call), signed as the issuer signs it.
    pub fn token(&self) -> String {
        self.key.sign(&self.claims())
    }
}
