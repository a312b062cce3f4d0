//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `/end_session` ends the browser session and
//! returns to a registered post-logout URI only.

use crate::helpers::TestApp;
use crate::oauth::flow::{
    AuthRequest, POST_LOGOUT_REDIRECT_URI, REDIRECT_URI, TestClient, authorization_error, consented_setup, field,
    hidden_value, location, redirect_params, setup, tokens,
};

/// `/end_session?id_token_hint=…&post_logout_redirect_uri=…&state=xyz`
fn end_session_path(id_token: &str, post_logout_redirect_uri: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
        .append_pair("state", "xyz")
        .finish();
    format!("/end_session?{query}")
}

/// Signs in through a code flow and returns the ID token issued.
async fn signed_in_id_token(app: &TestApp, client: &TestClient) -> String {
    field(&tokens(app, client).await, "id_token")
}

#[tokio::test]
async fn end_session_returns_to_the_registered_uri_with_the_state() {
    let (app, client) = setup().await;
    let id_token = signed_in_id_token(&app, &client).await;
    let response = app.get(&end_session_path(&id_token, POST_LOGOUT_REDIRECT_URI)).await;
    let params = redirect_params(&app, &response, POST_LOGOUT_REDIRECT_URI);
    assert_eq!(params.get("state").map(String::as_str), Some("xyz"));
}

#[tokio::test]
async fn after_end_session_prompt_none_answers_login_required() {
    let (app, client) = setup().await;
    let id_token = signed_in_id_token(&app, &client).await;
    app.get(&end_session_path(&id_token, POST_LOGOUT_REDIRECT_URI)).await;
    let request = AuthRequest::new(&client).with("prompt", "none");
    assert_eq!(authorization_error(&app, &request).await, "login_required");
}

#[tokio::test]
async fn end_session_never_redirects_to_an_unregistered_uri() {
    let (app, client) = setup().await;
    let id_token = signed_in_id_token(&app, &client).await;
    let unregistered = "http://127.0.0.1:9/elsewhere";
    let response = app.get(&end_session_path(&id_token, unregistered)).await;
    if response.headers().contains_key("location") {
        let target = location(&app, &response);
        assert!(!target.as_str().starts_with(unregistered), "redirected to {target}");
    }
}

/// The confirmation page of `/end_session` without an `id_token_hint`.
async fn confirmation_page(app: &TestApp) -> String {
    let page = app.get("/end_session").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign out?"), "{html}");
    html
}

/// RP-Initiated Logout §2: without an `id_token_hint` the person is asked first, and stays signed in until
/// they answer.
#[tokio::test]
async fn end_session_without_a_hint_asks_before_signing_out() {
    let (app, client) = consented_setup().await;
    confirmation_page(&app).await;
    let silent = AuthRequest::new(&client).with("prompt", "none");
    let before = redirect_params(&app, &app.get(&silent.path()).await, REDIRECT_URI);
    assert!(before.contains_key("code"), "still signed in until confirmed: {before:?}");
}

/// The session ends when the person confirms (a form with a CSRF token).
#[tokio::test]
async fn confirming_end_session_signs_out() {
    let (app, client) = consented_setup().await;
    let html = confirmation_page(&app).await;
    let confirmed = app.post_form("/end_session", &[("csrf_token", &hidden_value(&html, "csrf_token"))]).await;
    assert_eq!(confirmed.status(), 200);
    let silent = AuthRequest::new(&client).with("prompt", "none");
    assert_eq!(authorization_error(&app, &silent).await, "login_required");
}
