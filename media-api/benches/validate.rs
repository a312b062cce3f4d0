//! What the resource-server validator costs per request, for ES256, EdDSA and RS256 access tokens:
//!
//! - `signature_only`: `jsonwebtoken::decode` of a token with its key parsed once (the floor);
//! - `first_seen`: a token the validator has not seen, through `Validator::validate` (header, key lookup,
//!   signature, claims, cache insertion); each iteration a different token, all signed before timing;
//! - `cached`: the same token again, answered by the verification cache.
//!
//! `overhead_us` is what the validator adds: `first_seen - signature_only` and, for `cached`, its whole
//! cost. Targets: a cached token under 5 µs; a first-seen token at most the signature check plus 10 µs.
//! Run pinned to one core: `taskset -c 1 cargo bench -p media-api --bench validate`. Prints one JSON object
//! per algorithm and case: the median over `VALIDATE_ROUNDS` (default 9) rounds of `VALIDATE_BATCH` (default
//! 1000) tokens each.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use idp::domain::keys::{JwtType, KeyRing, SigningAlgorithm, SigningKey};
use idp::domain::tokens::{AccessTokenClaims, new_id};
use jsonwebtoken::Validation;
use media_api::auth::{Validator, ValidatorConfig};
use time::OffsetDateTime;

const AUDIENCE: &str = "https://media.example/api";

fn fail(what: &str) -> ! {
    eprintln!("validate bench: {what}");
    std::process::exit(1)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Serves the JWKS of `keys` on 127.0.0.1; returns the issuer URL.
async fn serve_jwks(keys: Vec<SigningKey>) -> String {
    let jwks = KeyRing::new(keys, OffsetDateTime::now_utc(), Duration::from_secs(3600)).jwks_json();
    let app = Router::new().route("/jwks", get(move || async move { jwks.clone() }));
    let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else { fail("cannot bind") };
    let Ok(address) = listener.local_addr() else { fail("no local address") };
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// The median of `values`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Microseconds per call of `op` over every token once.
fn per_op(tokens: &[String], mut op: impl FnMut(&str)) -> f64 {
    let start = Instant::now();
    for token in tokens {
        op(token);
    }
    start.elapsed().as_secs_f64() * 1e6 / tokens.len() as f64
}

fn print(alg: SigningAlgorithm, case: &str, ops: usize, us_per_op: f64, overhead_us: Option<f64>) {
    let overhead = overhead_us.map(|o| format!(",\"overhead_us\":{o:.2}")).unwrap_or_default();
    println!("{{\"alg\":\"{alg}\",\"case\":\"{case}\",\"ops\":{ops},\"us_per_op\":{us_per_op:.2}{overhead}}}");
}

/// A validator for `issuer` with its keys fetched, and so an empty cache.
async fn fresh_validator(issuer: &str) -> Validator {
    let validator = Validator::new(ValidatorConfig::new(issuer, AUDIENCE)).unwrap_or_else(|e| fail(&e.to_string()));
    if validator.refresh_keys().await.is_err() {
        fail("cannot fetch the JWKS");
    }
    validator
}

fn main() {
    let batch = usize::try_from(env_or("VALIDATE_BATCH", 1000)).unwrap_or(1000).max(1);
    let rounds = usize::try_from(env_or("VALIDATE_ROUNDS", 9)).unwrap_or(9).max(1);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        fail("cannot start a Tokio runtime")
    };

    for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa, SigningAlgorithm::Rs256] {
        let now = OffsetDateTime::now_utc();
        let Ok((key, pem)) = SigningKey::generate(alg, now) else { fail("cannot generate a key") };
        let Ok(published) = SigningKey::from_pem(key.meta.clone(), pem.as_bytes()) else { fail("bad PEM") };
        let issuer = runtime.block_on(serve_jwks(vec![published]));
        let claims = AccessTokenClaims {
            iss: issuer.clone(),
            sub: "bench-user".into(),
            aud: AUDIENCE.into(),
            client_id: "bench".into(),
            scope: "openid media.read".into(),
            exp: now.unix_timestamp() + 3600,
            iat: now.unix_timestamp(),
            jti: String::new(),
            auth_time: Some(now.unix_timestamp()),
            sid: Some("bench-session".into()),
        };
        // Every token distinct (its own jti), signed before any timing.
        let tokens: Vec<String> = (0..batch)
            .map(|_| key.sign(JwtType::AccessToken, &AccessTokenClaims { jti: new_id(), ..claims.clone() }))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|_| fail("signing failed"));

        // (a) The signature check alone: the key parsed once, the claims deserialised, nothing else.
        let mut validation = Validation::new(alg.jwt());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let decode = |token: &str| {
            if jsonwebtoken::decode::<AccessTokenClaims>(token, key.decoding_key(), &validation).is_err() {
                fail("a token does not verify");
            }
        };

        // Rounds alternate (a) and (b) over the same tokens, each (b) with a new validator so that every
        // token is first seen; the overhead is the median of the paired differences, which keeps other load
        // on the machine from landing on one case only.
        let (mut signature, mut first_seen, mut overhead, mut cached) = (vec![], vec![], vec![], vec![]);
        runtime.block_on(async {
            for token in tokens.iter().take(50) {
                decode(token);
            }
            for _ in 0..rounds {
                let a = per_op(&tokens, decode);
                let validator = fresh_validator(&issuer).await;
                let start = Instant::now();
                for token in &tokens {
                    if validator.validate(token, OffsetDateTime::now_utc()).await.is_err() {
                        fail("a first-seen token is refused");
                    }
                }
                let b = start.elapsed().as_secs_f64() * 1e6 / tokens.len() as f64;
                if validator.signature_checks() != tokens.len() as u64 {
                    fail("first-seen tokens were not all verified");
                }

                // (c) One token, again and again, from the cache.
                let token = &tokens[0];
                let start = Instant::now();
                for _ in 0..100 {
                    for _ in 0..tokens.len() {
                        if validator.validate(token, OffsetDateTime::now_utc()).await.is_err() {
                            fail("a cached token is refused");
                        }
                    }
                }
                let c = start.elapsed().as_secs_f64() * 1e6 / (100 * tokens.len()) as f64;
                if validator.signature_checks() != tokens.len() as u64 {
                    fail("a cached token was verified again");
                }
                signature.push(a);
                first_seen.push(b);
                overhead.push(b - a);
                cached.push(c);
            }
        });
        let ops = rounds * tokens.len();
        print(alg, "signature_only", ops, median(&mut signature), None);
        print(alg, "first_seen", ops, median(&mut first_seen), Some(median(&mut overhead)));
        let cached_us = median(&mut cached);
        print(alg, "cached", ops * 100, cached_us, Some(cached_us));
    }
}
