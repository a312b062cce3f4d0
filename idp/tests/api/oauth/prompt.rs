//! `prompt` and `max_age` (OIDC Core §3.1.2.1): when the user must (or must not) be asked again.

use std::time::Duration;

use crate::oauth::flow::{
    AuthRequest, REDIRECT_URI, assert_login_redirect, authorization_error, authorize, complete, consent_html, exchange,
    id_token_claims, redirect_params, setup, sign_in, signed_in_setup, tokens, tokens_from,
};

#[tokio::test]
async fn prompt_none_with_session_and_consent_returns_a_code_without_ui() {
    let (app, client) = signed_in_setup().await;
    authorize(&app, &AuthRequest::new(&client)).await;
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
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client).with("prompt", "none");
    assert_eq!(authorization_error(&app, &request).await, "consent_required");
}

#[tokio::test]
async fn prompt_login_asks_to_sign_in_again_despite_a_session() {
    let (app, client) = signed_in_setup().await;
    authorize(&app, &AuthRequest::new(&client)).await;
    let request = AuthRequest::new(&client).with("prompt", "login");
    let response = app.get(&request.path()).await;
    assert_login_redirect(&app, &response);
    let params = complete(&app, sign_in(&app, response).await).await;
    assert!(params.contains_key("code"), "{params:?}");
}

#[tokio::test]
async fn prompt_consent_asks_again_despite_remembered_consent() {
    let (app, client) = signed_in_setup().await;
    authorize(&app, &AuthRequest::new(&client)).await;
    let response = app.get(&AuthRequest::new(&client).with("prompt", "consent").path()).await;
    consent_html(response).await;
}

#[tokio::test]
async fn max_age_zero_forces_sign_in_and_a_later_auth_time() {
    let (app, client) = setup().await;
    let first = tokens(&app, &client).await;
    let first = id_token_claims(&app, &client, first["id_token"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let request = AuthRequest::new(&client).with("max_age", "0");
    let response = app.get(&request.path()).await;
    assert_login_redirect(&app, &response);
    let params = complete(&app, sign_in(&app, response).await).await;
    let second = tokens_from(exchange(&app, &client, &params, &request).await).await;
    let second = id_token_claims(&app, &client, second["id_token"].as_str().unwrap()).await;
    let (before, after) = (first["auth_time"].as_i64().unwrap(), second["auth_time"].as_i64().unwrap());
    assert!(after > before, "auth_time {after} is the new sign-in, after {before}");
}
