//! The refresh_token grant (RFC 6749 §6): rotation, reuse detection that revokes the whole family
//! (RFC 9700 §4.14.2), and scope narrowing.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::TestApp;
use crate::oauth::flow::{
    AuthRequest, EMAIL, assert_inactive, field, id_token_claims, introspect, oauth_error, refresh, setup,
    setup_with_clock, tokens, tokens_and_another_client, tokens_for, tokens_from, user_id,
};

#[tokio::test]
async fn refresh_returns_a_new_access_token_and_a_new_refresh_token() {
    let (app, client) = setup().await;
    let first = tokens(&app, &client).await;
    let second = tokens_from(refresh(&app, &client, &field(&first, "refresh_token"), None).await).await;
    assert_ne!(field(&second, "access_token"), field(&first, "access_token"));
    assert_ne!(field(&second, "refresh_token"), field(&first, "refresh_token"), "the refresh token rotates");
}

#[tokio::test]
async fn reused_refresh_token_revokes_the_whole_family() {
    let (app, client) = setup().await;
    let first = tokens(&app, &client).await;
    let second = tokens_from(refresh(&app, &client, &field(&first, "refresh_token"), None).await).await;

    let replay = refresh(&app, &client, &field(&first, "refresh_token"), None).await;
    assert_eq!(oauth_error(replay).await, (400, "invalid_grant".to_owned()));

    let newest = refresh(&app, &client, &field(&second, "refresh_token"), None).await;
    assert_eq!(oauth_error(newest).await, (400, "invalid_grant".to_owned()), "the newest refresh token is revoked");
    for access_token in [field(&first, "access_token"), field(&second, "access_token")] {
        assert_inactive(&introspect(&app, &client, &access_token).await);
    }
}

#[tokio::test]
async fn refresh_with_a_narrower_scope_grants_that_scope() {
    let (app, client) = setup().await;
    let first = tokens(&app, &client).await;
    let narrower = refresh(&app, &client, &field(&first, "refresh_token"), Some("openid offline_access")).await;
    let body = tokens_from(narrower).await;
    let mut scope: Vec<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(scope, ["offline_access", "openid"]);
}

#[tokio::test]
async fn refresh_with_a_wider_scope_is_refused_with_invalid_scope() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client).with("scope", "openid email offline_access");
    let first = tokens_for(&app, &client, &request).await;
    let wider =
        refresh(&app, &client, &field(&first, "refresh_token"), Some("openid email profile offline_access")).await;
    assert_eq!(oauth_error(wider).await, (400, "invalid_scope".to_owned()));
}

/// The claims of the ID token of a code flow, and of the one its refresh token gets a second later, with the
/// server that issued them.
async fn id_token_claims_before_and_after_a_refresh() -> (TestApp, Value, Value) {
    let (app, client, clock) = setup_with_clock().await;
    let first = tokens(&app, &client).await;
    let before = id_token_claims(&app, &client, &field(&first, "id_token")).await;
    clock.advance(Duration::from_secs(1));
    let second = tokens_from(refresh(&app, &client, &field(&first, "refresh_token"), None).await).await;
    let after = id_token_claims(&app, &client, &field(&second, "id_token")).await;
    (app, before, after)
}

/// OIDC Core §12.2: the refreshed ID token is of the same authentication (`sub`, `auth_time`).
#[tokio::test]
async fn refreshed_id_token_keeps_the_subject_and_auth_time() {
    let (app, before, after) = id_token_claims_before_and_after_a_refresh().await;
    assert_eq!(after["sub"], user_id(&app, EMAIL).await.as_str());
    assert_eq!(after["auth_time"], before["auth_time"]);
}

/// OIDC Core §12.2: the refreshed ID token is issued anew.
#[tokio::test]
async fn refreshed_id_token_is_issued_later() {
    let (_app, before, after) = id_token_claims_before_and_after_a_refresh().await;
    assert!(after["iat"].as_i64() > before["iat"].as_i64(), "{} after {}", after["iat"], before["iat"]);
}

/// Reference #46: two concurrent refreshes of one token: exactly one succeeds, and the family revocation
/// the other one causes persists (the winner's new refresh token is dead too).
#[tokio::test]
async fn concurrent_refreshes_succeed_once_and_revoke_the_family() {
    let (app, client) = setup().await;
    let first = tokens(&app, &client).await;
    let token = field(&first, "refresh_token");
    let (a, b) = tokio::join!(refresh(&app, &client, &token, None), refresh(&app, &client, &token, None));
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    let winner = if a.status() == 200 { a } else { b };
    let rotated = tokens_from(winner).await;
    let next = refresh(&app, &client, &field(&rotated, "refresh_token"), None).await;
    assert_eq!(oauth_error(next).await, (400, "invalid_grant".to_owned()));
}

/// Refresh tokens issued before secrets began with the time they were made (43 random characters, stored as
/// their SHA-256 alone) keep working after an upgrade, and are rotated into the new form.
#[tokio::test]
async fn a_refresh_token_of_the_earlier_form_still_refreshes() {
    use base64::Engine;
    let (app, client) = setup().await;
    tokens(&app, &client).await;
    let earlier = "Yv3wGQ0pLk2h4NcT9sEbXa7mRuJ1dFiZ5oKqW8yVx6A";
    let stored = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, earlier.as_bytes()).as_ref());
    let updated = sqlx::query("UPDATE refresh_tokens SET token_hash = $1")
        .bind(stored)
        .execute(app.state.db.pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 1, "the grant's one refresh token, now stored as the earlier release stored it");

    let rotated = tokens_from(refresh(&app, &client, earlier, None).await).await;
    assert_eq!(field(&rotated, "refresh_token").len(), 55, "the successor has the time prefix");
}

/// RFC 6749 §6: a refresh token is bound to the client it was issued to.
#[tokio::test]
async fn a_refresh_token_presented_by_another_client_is_refused_with_invalid_grant() {
    let (app, _, other, first) = tokens_and_another_client().await;
    let stolen = refresh(&app, &other, &field(&first, "refresh_token"), None).await;
    assert_eq!(oauth_error(stolen).await, (400, "invalid_grant".to_owned()));
}

/// Another client's attempt is not a reuse of the token: it still works for its own client.
#[tokio::test]
async fn another_clients_attempt_leaves_the_refresh_token_working_for_its_own() {
    let (app, client, other, first) = tokens_and_another_client().await;
    refresh(&app, &other, &field(&first, "refresh_token"), None).await;
    assert_eq!(refresh(&app, &client, &field(&first, "refresh_token"), None).await.status(), 200);
}

const DAY: Duration = Duration::from_secs(86_400);

/// ASVS 10.4.8: a refresh token unused for `IDP_REFRESH_TOKEN_TTL` (30 days) has expired.
#[tokio::test]
async fn a_refresh_token_unused_for_its_idle_lifetime_is_refused_with_invalid_grant() {
    let (app, client, clock) = setup_with_clock().await;
    let first = tokens(&app, &client).await;
    clock.advance(DAY * 30 + Duration::from_secs(1));
    let late = refresh(&app, &client, &field(&first, "refresh_token"), None).await;
    assert_eq!(oauth_error(late).await, (400, "invalid_grant".to_owned()));
}

/// ASVS 10.4.8: refreshing slides the token's lifetime, but never past `IDP_REFRESH_TOKEN_ABSOLUTE_TTL`
/// (90 days) from the authorization.
#[tokio::test]
async fn refreshing_ends_at_the_grants_absolute_lifetime_however_often_it_is_used() {
    let (app, client, clock) = setup_with_clock().await;
    let mut current = tokens(&app, &client).await;
    for _ in 0..3 {
        clock.advance(DAY * 29);
        current = tokens_from(refresh(&app, &client, &field(&current, "refresh_token"), None).await).await;
    }
    clock.advance(DAY * 4);
    let past_the_grant = refresh(&app, &client, &field(&current, "refresh_token"), None).await;
    assert_eq!(oauth_error(past_the_grant).await, (400, "invalid_grant".to_owned()), "day 91, 4 days after use");
}
