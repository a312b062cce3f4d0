//! `prompt` and `max_age` (OIDC Core §3.1.2.1): when the user must (or must not) be asked again.

use std::time::Duration;

use crate::helpers::{TestApp, new_browser};
use crate::oauth::flow::{
    AuthRequest, PASSWORD, REDIRECT_URI, TestClient, assert_login_redirect, authorization_error, complete,
    consent_html, consented_setup, consented_setup_with_clock, exchange, id_token_claims, redirect_params, setup,
    setup_with_clock, sign_in, sign_in_as_email, signed_in_error, tokens, tokens_from,
};

#[tokio::test]
async fn prompt_none_with_session_and_consent_returns_a_code_without_ui() {
    let (app, client) = consented_setup().await;
    let request = AuthRequest::new(&client).with("prompt", "none");
    let params = redirect_params(&app, &app.get(&request.path()).await, REDIRECT_URI);
    assert!(params.contains_key("code"), "{params:?}");
    assert_eq!(params["state"], request.state);
}

#[tokio::test]
async fn prompt_none_without_session_answers_login_required() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client).with("prompt", "none");
    assert_eq!(authorization_error(&app, &request).await, "login_required");
}

#[tokio::test]
async fn prompt_none_without_consent_answers_consent_required() {
    assert_eq!(signed_in_error(|r| r.with("prompt", "none")).await, "consent_required");
}

#[tokio::test]
async fn prompt_login_asks_to_sign_in_again_despite_a_session() {
    let (app, client) = consented_setup().await;
    let request = AuthRequest::new(&client).with("prompt", "login");
    let response = app.get(&request.path()).await;
    assert_login_redirect(&app, &response);
    let params = complete(&app, sign_in(&app, response).await).await;
    assert!(params.contains_key("code"), "{params:?}");
}

#[tokio::test]
async fn prompt_consent_asks_again_despite_remembered_consent() {
    let (app, client) = consented_setup().await;
    let response = app.get(&AuthRequest::new(&client).with("prompt", "consent").path()).await;
    consent_html(response).await;
}

#[tokio::test]
async fn max_age_zero_forces_sign_in_and_a_later_auth_time() {
    let (app, client, clock) = setup_with_clock().await;
    let first = tokens(&app, &client).await;
    let first = id_token_claims(&app, &client, first["id_token"].as_str().unwrap()).await;
    clock.advance(Duration::from_secs(1));

    let request = AuthRequest::new(&client).with("max_age", "0");
    let response = app.get(&request.path()).await;
    assert_login_redirect(&app, &response);
    let (before, after) =
        (first["auth_time"].as_i64().unwrap(), signed_in_again(&app, &client, &request, response).await);
    assert!(after > before, "auth_time {after} is the new sign-in, after {before}");
}

/// OIDC Core §3.1.2.1 (errata set 2): `max_age=0` is `prompt=login`, so a sign-in of the same second does not
/// satisfy it (`now - auth_time` is 0 there, within the age).
#[tokio::test]
async fn max_age_zero_asks_to_sign_in_even_in_the_second_of_the_last_sign_in() {
    let (app, client, clock) = setup_with_clock().await;
    clock.stop();
    sign_in_as_email(&app).await;
    let response = app.get(&AuthRequest::new(&client).with("max_age", "0").path()).await;
    assert_login_redirect(&app, &response);
}

/// The `auth_time` of the ID token that `request` gets once the person signs in again on the sign-in page
/// that `response` (the authorization endpoint's answer to `request`) leads to.
async fn signed_in_again(
    app: &TestApp,
    client: &TestClient,
    request: &AuthRequest,
    response: reqwest::Response,
) -> i64 {
    let params = complete(app, sign_in(app, response).await).await;
    let tokens = tokens_from(exchange(app, client, &params, request).await).await;
    id_token_claims(app, client, tokens["id_token"].as_str().unwrap()).await["auth_time"].as_i64().unwrap()
}

/// The ID token of a code for `request`, given at once: the browser is signed in and has consented.
async fn session_id_token(app: &TestApp, client: &TestClient, request: &AuthRequest) -> String {
    let params = redirect_params(app, &app.get(&request.path()).await, REDIRECT_URI);
    assert!(params.contains_key("code"), "a code without sign-in or consent: {params:?}");
    let tokens = tokens_from(exchange(app, client, &params, request).await).await;
    tokens["id_token"].as_str().unwrap().to_owned()
}

/// The `sub` and `auth_time` of [`session_id_token`].
async fn session_claims(app: &TestApp, client: &TestClient, request: &AuthRequest) -> (String, i64) {
    let claims = id_token_claims(app, client, &session_id_token(app, client, request).await).await;
    (claims["sub"].as_str().unwrap().to_owned(), claims["auth_time"].as_i64().unwrap())
}

#[tokio::test]
async fn prompt_none_keeps_the_sessions_subject_and_auth_time() {
    let (app, client, clock) = consented_setup_with_clock().await;
    let first = session_claims(&app, &client, &AuthRequest::new(&client)).await;
    clock.advance(Duration::from_secs(1));
    let silent = session_claims(&app, &client, &AuthRequest::new(&client).with("prompt", "none")).await;
    assert_eq!(silent, first);
}

#[tokio::test]
async fn prompt_login_gives_a_later_auth_time() {
    let (app, client, clock) = consented_setup_with_clock().await;
    let (_, before) = session_claims(&app, &client, &AuthRequest::new(&client)).await;
    clock.advance(Duration::from_secs(1));

    let request = AuthRequest::new(&client).with("prompt", "login");
    let after = signed_in_again(&app, &client, &request, app.get(&request.path()).await).await;
    assert!(after > before, "auth_time {after} is the new sign-in, after {before}");
}

#[tokio::test]
async fn max_age_the_session_is_within_needs_no_new_sign_in() {
    let (app, client) = consented_setup().await;
    let (_, signed_in_at) = session_claims(&app, &client, &AuthRequest::new(&client)).await;
    let (_, auth_time) = session_claims(&app, &client, &AuthRequest::new(&client).with("max_age", "10000")).await;
    assert_eq!(auth_time, signed_in_at, "the same sign-in");
}

#[tokio::test]
async fn prompt_none_with_the_sessions_own_id_token_hint_answers_for_its_subject() {
    let (app, client) = consented_setup().await;
    let hint = session_id_token(&app, &client, &AuthRequest::new(&client)).await;
    let request = AuthRequest::new(&client).with("prompt", "none").with("id_token_hint", &hint);
    let (sub, _) = session_claims(&app, &client, &request).await;
    assert_eq!(sub, id_token_claims(&app, &client, &hint).await["sub"].as_str().unwrap());
}

#[tokio::test]
async fn a_tampered_id_token_hint_answers_login_required() {
    let (app, client) = consented_setup().await;
    let hint = session_id_token(&app, &client, &AuthRequest::new(&client)).await;
    let (signed, signature) = hint.rsplit_once('.').unwrap();
    let flipped = if &signature[10..11] == "A" { "B" } else { "A" };
    let tampered = format!("{signed}.{}{flipped}{}", &signature[..10], &signature[11..]);
    let request = AuthRequest::new(&client).with("prompt", "none").with("id_token_hint", &tampered);
    assert_eq!(authorization_error(&app, &request).await, "login_required");
}

#[tokio::test]
async fn another_users_id_token_hint_answers_login_required() {
    let (mut app, client) = consented_setup().await;
    let alices = session_id_token(&app, &client, &AuthRequest::new(&client)).await;
    app.browser = new_browser();
    app.create_user("bob@example.com", PASSWORD).await;
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), 303, "sign-in failed");
    let request = AuthRequest::new(&client).with("prompt", "none").with("id_token_hint", &alices);
    assert_eq!(authorization_error(&app, &request).await, "login_required");
}
