//! Fetching and refreshing the issuer's keys: on an unknown `kid` (rate limited, single-flight) and
//! periodically.

use std::sync::Arc;
use std::time::{Duration, Instant};

use idp::domain::keys::SigningAlgorithm;
use media_api::auth::{AuthError, InvalidToken, Validator, ValidatorConfig};

use crate::helpers::{Setup, TestIssuer, TestKey, now};

/// Settings that let every unknown `kid` fetch the JWKS again.
fn unlimited(config: ValidatorConfig) -> ValidatorConfig {
    ValidatorConfig { unknown_kid_refresh_interval: Duration::ZERO, ..config }
}

#[tokio::test]
async fn unknown_kid_fetches_the_jwks_and_is_accepted_once_published() {
    let s = Setup::with_config(SigningAlgorithm::Es256, unlimited).await;
    let new = TestKey::generate(SigningAlgorithm::Es256);
    s.issuer.publish(&[&s.key, &new]);

    assert!(s.validator.validate(&new.sign(&s.claims()), now()).await.is_ok());
    assert_eq!(s.issuer.fetches(), 2, "start-up, then the unknown kid");
    assert!(s.validator.validate(&new.sign(&s.claims()), now()).await.is_ok());
    assert_eq!(s.issuer.fetches(), 2, "a known kid fetches nothing");
}

#[tokio::test]
async fn unknown_kid_still_unpublished_after_the_fetch_is_refused() {
    let s = Setup::with_config(SigningAlgorithm::Es256, unlimited).await;
    let stranger = TestKey::generate(SigningAlgorithm::Es256);

    let result = s.validator.validate(&stranger.sign(&s.claims()), now()).await;

    assert_eq!(result, Err(InvalidToken::UnknownKey.into()));
    assert_eq!(s.issuer.fetches(), 2);
}

#[tokio::test]
async fn flood_of_unknown_kids_fetches_the_jwks_once() {
    let published = TestKey::generate(SigningAlgorithm::EdDsa);
    let strangers: Vec<TestKey> = (0..10).map(|_| TestKey::generate(SigningAlgorithm::EdDsa)).collect();
    let issuer = TestIssuer::start(&[&published]).await;
    // Each fetch takes a while, so the concurrent requests arrive while it is under way.
    issuer.set_delay(Duration::from_millis(200));
    // No fetch at start-up: the first token triggers it. Default rate limit (one fetch per 10 s).
    let validator = Arc::new(Validator::new(issuer.config()).unwrap());

    let mut tasks = Vec::new();
    for n in 0..50 {
        let token = strangers[n % strangers.len()].sign(&issuer.claims());
        let validator = validator.clone();
        tasks.push(tokio::spawn(async move { validator.validate(&token, now()).await }));
    }
    let valid = published.sign(&issuer.claims());
    let valid_result = validator.validate(&valid, now()).await;
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(InvalidToken::UnknownKey.into()));
    }
    for stranger in &strangers {
        let result = validator.validate(&stranger.sign(&issuer.claims()), now()).await;
        assert_eq!(result, Err(InvalidToken::UnknownKey.into()), "later unknown kids are refused without a fetch");
    }

    assert!(valid_result.is_ok(), "a token of a published key waited for the one fetch: {valid_result:?}");
    assert_eq!(issuer.fetches(), 1);
    assert_eq!(validator.jwks().fetches(), 1);
}

#[tokio::test]
async fn unknown_kid_while_the_issuer_is_down_is_unavailable_not_invalid() {
    let s = Setup::with_config(SigningAlgorithm::Es256, unlimited).await;
    let rotated = TestKey::generate(SigningAlgorithm::Es256);
    s.issuer.set_failing(true);

    assert_eq!(s.validator.validate(&rotated.sign(&s.claims()), now()).await, Err(AuthError::Unavailable));
}

/// The issuer goes down and a token of a key it has not published is refused as unavailable: the validator
/// has seen the issuer down. Returns that key.
async fn issuer_seen_down(s: &Setup) -> TestKey {
    s.issuer.set_failing(true);
    let rotated = TestKey::generate(SigningAlgorithm::Es256);
    assert_eq!(s.validator.validate(&rotated.sign(&s.claims()), now()).await, Err(AuthError::Unavailable));
    rotated
}

#[tokio::test]
async fn known_keys_keep_working_while_the_issuer_is_down() {
    let s = Setup::with_config(SigningAlgorithm::Es256, unlimited).await;
    issuer_seen_down(&s).await;

    assert!(s.validator.validate(&s.token(), now()).await.is_ok());
}

#[tokio::test]
async fn unknown_kid_is_accepted_once_the_issuer_is_back() {
    let s = Setup::with_config(SigningAlgorithm::Es256, unlimited).await;
    let rotated = issuer_seen_down(&s).await;

    s.issuer.set_failing(false);
    s.issuer.publish(&[&s.key, &rotated]);
    assert!(s.validator.validate(&rotated.sign(&s.claims()), now()).await.is_ok(), "recovered");
}

#[tokio::test]
async fn issuer_unreachable_before_the_first_fetch_is_unavailable() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    issuer.set_failing(true);
    let validator = Validator::new(issuer.config()).unwrap();

    assert_eq!(validator.validate(&key.sign(&issuer.claims()), now()).await, Err(AuthError::Unavailable));
}

#[tokio::test]
async fn a_broken_jwks_keeps_the_previous_keys() {
    let s = Setup::new(SigningAlgorithm::Rs256).await;

    s.issuer.publish_raw(b"<html>maintenance</html>");
    assert!(s.validator.refresh_keys().await.is_err());
    assert!(s.validator.validate(&s.token(), now()).await.is_ok());
}

#[tokio::test]
async fn periodic_refresh_drops_keys_the_issuer_no_longer_publishes() {
    let retired = TestKey::generate(SigningAlgorithm::Es256);
    let current = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&retired, &current]).await;
    let config = ValidatorConfig { refresh_interval: Duration::from_millis(100), ..issuer.config() };
    let validator = Validator::start(config).unwrap();
    wait_until("the first fetch", || validator.jwks().current().len() == 2).await;
    assert!(validator.validate(&retired.sign(&issuer.claims()), now()).await.is_ok());

    issuer.publish(&[&current]);
    wait_until("a periodic fetch", || validator.jwks().current().len() == 1).await;

    let fresh = retired.sign(&issuer.claims());
    assert_eq!(validator.validate(&fresh, now()).await, Err(InvalidToken::UnknownKey.into()));
    assert!(issuer.fetches() >= 2);
}

#[tokio::test]
async fn periodic_refresh_stops_when_the_validator_is_dropped() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let config = ValidatorConfig { refresh_interval: Duration::from_millis(50), ..issuer.config() };
    let validator = Validator::start(config).unwrap();
    wait_until("two fetches", || issuer.fetches() >= 2).await;

    drop(validator);
    // The task may be in the middle of one last round; after that it finds the validator gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_drop = issuer.fetches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(issuer.fetches(), after_drop);
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
