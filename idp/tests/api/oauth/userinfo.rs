//! The UserInfo endpoint (OIDC Core §5.3) and its bearer-token errors (RFC 6750 §3).

use crate::helpers::TestApp;
use crate::oauth::flow::{
    AuthRequest, EMAIL, backchannel, client_credentials, field, id_token_claims, json, register, resign_access_token,
    revoke, service, setup, tokens, tokens_for,
};

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("a {} answer without WWW-Authenticate", response.status()))
}

#[tokio::test]
async fn userinfo_get_with_a_bearer_header_returns_the_id_token_subject() {
    let (app, client) = setup().await;
    let body = tokens(&app, &client).await;
    let id_token = id_token_claims(&app, &client, &field(&body, "id_token")).await;
    let response =
        backchannel().get(app.url("/userinfo")).bearer_auth(field(&body, "access_token")).send().await.unwrap();
    let (status, userinfo) = json(response).await;
    assert_eq!(status, 200, "{userinfo}");
    assert_eq!(userinfo["sub"], id_token["sub"]);
    assert_eq!(userinfo["email"], EMAIL, "the email scope was granted");
}

#[tokio::test]
async fn userinfo_post_with_a_bearer_header_returns_the_subject() {
    let (app, client) = setup().await;
    let body = tokens(&app, &client).await;
    let id_token = id_token_claims(&app, &client, &field(&body, "id_token")).await;
    let response =
        backchannel().post(app.url("/userinfo")).bearer_auth(field(&body, "access_token")).send().await.unwrap();
    let (status, userinfo) = json(response).await;
    assert_eq!(status, 200, "{userinfo}");
    assert_eq!(userinfo["sub"], id_token["sub"]);
}

#[tokio::test]
async fn userinfo_post_with_the_token_in_the_form_body_returns_the_subject() {
    let (app, client) = setup().await;
    let body = tokens(&app, &client).await;
    let id_token = id_token_claims(&app, &client, &field(&body, "id_token")).await;
    let access_token = field(&body, "access_token");
    let response =
        backchannel().post(app.url("/userinfo")).form(&[("access_token", access_token.as_str())]).send().await.unwrap();
    let (status, userinfo) = json(response).await;
    assert_eq!(status, 200, "{userinfo}");
    assert_eq!(userinfo["sub"], id_token["sub"]);
}

#[tokio::test]
async fn userinfo_without_a_token_answers_401_with_a_bearer_challenge() {
    let (app, _) = setup().await;
    let response = backchannel().get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).starts_with("Bearer"), "{}", challenge(&response));
}

/// Userinfo refuses `token` with `status` and a challenge naming `error` (RFC 6750 §3.1).
async fn assert_userinfo_refused(app: &TestApp, token: &str, status: u16, error: &str) {
    let response = backchannel().get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), status);
    assert!(challenge(&response).contains(error), "{}", challenge(&response));
}

#[tokio::test]
async fn userinfo_with_a_revoked_token_answers_401_invalid_token() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    revoke(&app, &client, &access_token).await;
    assert_userinfo_refused(&app, &access_token, 401, "invalid_token").await;
}

#[tokio::test]
async fn userinfo_with_a_user_token_naming_no_grant_answers_401_invalid_token() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    let same = resign_access_token(&app, &access_token, |_| {});
    let response = backchannel().get(app.url("/userinfo")).bearer_auth(&same).send().await.unwrap();
    assert_eq!(response.status(), 200, "the same claims, signed again");
    let without_grant = resign_access_token(&app, &access_token, |claims| claims["jti"] = "no-grant".into());
    assert_userinfo_refused(&app, &without_grant, 401, "invalid_token").await;
}

#[tokio::test]
async fn userinfo_with_a_client_credentials_token_answers_403_insufficient_scope() {
    let (app, _) = setup().await;
    let client = register(&app, service()).await;
    let access_token = field(&json(client_credentials(&app, &client).await).await.1, "access_token");
    assert_userinfo_refused(&app, &access_token, 403, "insufficient_scope").await;
}

/// RFC 6750 §2.3 is not offered: a token in the query string ends up in logs and histories, so it is no
/// credential here.
#[tokio::test]
async fn userinfo_with_the_token_in_the_query_string_answers_401() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    let response = backchannel().get(app.url(&format!("/userinfo?access_token={access_token}"))).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).starts_with("Bearer"), "{}", challenge(&response));
}

/// OIDC Core §5.3: userinfo is for tokens with the `openid` scope.
#[tokio::test]
async fn userinfo_with_a_user_token_without_openid_answers_403_insufficient_scope() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client).with("scope", "email offline_access");
    let access_token = field(&tokens_for(&app, &client, &request).await, "access_token");
    assert_userinfo_refused(&app, &access_token, 403, "insufficient_scope").await;
}
