//! The verification cache seen through the validator.

use std::sync::Arc;

use idp::domain::keys::SigningAlgorithm;
use idp::domain::tokens::AccessTokenClaims;
use media_api::auth::{InvalidToken, Validator, ValidatorConfig};

use crate::helpers::{LEEWAY, NOW, Setup, TTL, TestIssuer, TestKey, at, now};

#[tokio::test]
async fn cached_token_skips_the_signature_check() {
    let s = Setup::new(SigningAlgorithm::Rs256).await;
    let token = s.token();

    let first = s.validator.validate(&token, now()).await.unwrap();
    let second = s.validator.validate(&token, at(NOW + 10)).await.unwrap();

    assert_eq!(s.validator.signature_checks(), 1);
    assert!(Arc::ptr_eq(&first, &second), "the cached principal itself");
    s.validator.validate(&s.token(), now()).await.unwrap();
    assert_eq!(s.validator.signature_checks(), 2, "another token is verified");
}

/// Refused at the same second as a token checked afresh: the end of the leeway after its `exp`.
#[tokio::test]
async fn cached_token_is_refused_from_the_end_of_the_leeway_after_its_exp() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token = s.token();
    s.validator.validate(&token, now()).await.unwrap();

    assert!(s.validator.validate(&token, at(NOW + TTL + LEEWAY - 1)).await.is_ok());
    assert_eq!(s.validator.validate(&token, at(NOW + TTL + LEEWAY)).await, Err(InvalidToken::Expired.into()));
    assert_eq!(s.validator.signature_checks(), 1, "answered from the cache");
}

#[tokio::test]
async fn refused_token_is_not_cached() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token = s.key.sign(&AccessTokenClaims { aud: "https://donations.example/api".into(), ..s.claims() });

    for _ in 0..2 {
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::WrongAudience.into()));
    }
    assert_eq!(s.validator.signature_checks(), 2, "verified again each time");
    assert_eq!(s.validator.cached_tokens(), 0);
}

#[tokio::test]
async fn cache_stays_within_its_capacity() {
    let s = Setup::with_config(SigningAlgorithm::EdDsa, |c| ValidatorConfig { cache_capacity: 8, ..c }).await;

    for _ in 0..30 {
        s.validator.validate(&s.token(), now()).await.unwrap();
        assert!(s.validator.cached_tokens() <= 8, "{} cached", s.validator.cached_tokens());
    }
    assert!(s.validator.cached_tokens() > 0);
}

#[tokio::test]
async fn zero_capacity_verifies_every_time() {
    let s = Setup::with_config(SigningAlgorithm::EdDsa, |c| ValidatorConfig { cache_capacity: 0, ..c }).await;
    let token = s.token();
    for _ in 0..3 {
        s.validator.validate(&token, now()).await.unwrap();
    }
    assert_eq!(s.validator.signature_checks(), 3);
}

/// An issuer publishing `retired` and `current`, and a validator that has fetched both.
async fn two_keys() -> (TestKey, TestKey, TestIssuer, Validator) {
    let retired = TestKey::generate(SigningAlgorithm::Es256);
    let current = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&retired, &current]).await;
    let validator = issuer.validator().await;
    (retired, current, issuer, validator)
}

/// A key the issuer withdraws is refused from the next JWKS fetch, for the tokens already cached too: within
/// the refresh interval (5 min), not at the end of their lifetime.
#[tokio::test]
async fn cached_token_is_refused_once_its_key_is_no_longer_published() {
    let (retired, current, issuer, validator) = two_keys().await;
    let cached = retired.sign(&issuer.claims());
    validator.validate(&cached, now()).await.unwrap();
    assert!(validator.validate(&cached, at(NOW + 60)).await.is_ok(), "the cache answers while the key is published");

    issuer.publish(&[&current]);
    validator.refresh_keys().await.unwrap();

    assert_eq!(validator.validate(&cached, at(NOW + 60)).await, Err(InvalidToken::UnknownKey.into()));
}

#[tokio::test]
async fn new_token_of_a_withdrawn_key_is_refused_after_a_refresh() {
    let (retired, current, issuer, validator) = two_keys().await;
    issuer.publish(&[&current]);
    validator.refresh_keys().await.unwrap();
    let fresh = retired.sign(&issuer.claims());
    assert_eq!(validator.validate(&fresh, at(NOW + 60)).await, Err(InvalidToken::UnknownKey.into()));
}

#[tokio::test]
async fn cached_token_of_a_key_still_published_skips_the_signature_check_after_a_refresh() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token = s.token();
    s.validator.validate(&token, now()).await.unwrap();
    s.validator.refresh_keys().await.unwrap();
    s.validator.validate(&token, now()).await.unwrap();
    assert_eq!(s.validator.signature_checks(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_token_all_succeed_and_share_one_entry() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token: Arc<str> = s.token().into();
    let validator = Arc::new(s.validator);

    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (validator, token) = (validator.clone(), token.clone());
            tokio::spawn(async move { validator.validate(&token, now()).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().sub, "user-1");
    }
    assert_eq!(validator.cached_tokens(), 1);
}

#[tokio::test]
async fn tokens_differing_only_in_jti_are_separate_entries() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    for _ in 0..3 {
        s.validator.validate(&s.token(), now()).await.unwrap();
    }
    assert_eq!(s.validator.cached_tokens(), 3);
    assert_eq!(s.validator.signature_checks(), 3);
}
