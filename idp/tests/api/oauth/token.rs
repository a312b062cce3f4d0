//! The token endpoint's authorization_code grant and its refusals (RFC 6749 §4.1.3, §5.2; RFC 7636 §4.6;
//! RFC 9700 §4.14 for code reuse).

use std::time::Duration;

use idp::domain::clients::AuthMethod;

use crate::oauth::flow::{
    AuthRequest, EMAIL, OTHER_REDIRECT_URI, PASSWORD, REDIRECT_URI, TestClient, assert_inactive, authorize, exchange,
    field, introspect, oauth_error, refresh, register, setup, setup_with_clock, tokens_from, web_app,
};

#[tokio::test]
async fn reused_code_is_refused_with_invalid_grant() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    tokens_from(exchange(&app, &client, &params, &request).await).await;
    let again = exchange(&app, &client, &params, &request).await;
    assert_eq!(oauth_error(again).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn code_reuse_revokes_the_tokens_issued_from_it() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let first = tokens_from(exchange(&app, &client, &params, &request).await).await;
    exchange(&app, &client, &params, &request).await;

    assert_inactive(&introspect(&app, &client, &field(&first, "access_token")).await);
    let refreshed = refresh(&app, &client, &field(&first, "refresh_token"), None).await;
    assert_eq!(oauth_error(refreshed).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn wrong_code_verifier_is_refused_with_invalid_grant() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let another_request = AuthRequest::new(&client);
    let response = exchange(&app, &client, &params, &another_request).await;
    assert_eq!(oauth_error(response).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn missing_code_verifier_is_refused_with_invalid_grant() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let fields =
        [("grant_type", "authorization_code"), ("code", params["code"].as_str()), ("redirect_uri", REDIRECT_URI)];
    let response = client.post(&app, "/token", &fields).await;
    assert_eq!(oauth_error(response).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn redirect_uri_other_than_the_authorization_requests_is_refused_with_invalid_grant() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", params["code"].as_str()),
        ("redirect_uri", OTHER_REDIRECT_URI),
        ("code_verifier", request.verifier.as_str()),
    ];
    let response = client.post(&app, "/token", &fields).await;
    assert_eq!(oauth_error(response).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn code_issued_to_another_client_is_refused_with_invalid_grant() {
    let (app, client) = setup().await;
    let other = register(&app, web_app()).await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let response = exchange(&app, &other, &params, &request).await;
    assert_eq!(oauth_error(response).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn password_grant_is_refused_with_unsupported_grant_type() {
    let (app, client) = setup().await;
    let fields = [("grant_type", "password"), ("username", EMAIL), ("password", PASSWORD), ("scope", "openid")];
    let response = client.post(&app, "/token", &fields).await;
    assert_eq!(oauth_error(response).await, (400, "unsupported_grant_type".to_owned()));
}

#[tokio::test]
async fn unknown_grant_type_is_refused_with_unsupported_grant_type() {
    let (app, client) = setup().await;
    let response = client.post(&app, "/token", &[("grant_type", "urn:example:magic")]).await;
    assert_eq!(oauth_error(response).await, (400, "unsupported_grant_type".to_owned()));
}

#[tokio::test]
async fn grant_the_client_is_not_registered_for_is_refused_with_unauthorized_client() {
    let (app, client) = setup().await;
    let response = client.post(&app, "/token", &[("grant_type", "client_credentials")]).await;
    assert_eq!(oauth_error(response).await, (400, "unauthorized_client".to_owned()));
}

#[tokio::test]
async fn wrong_client_secret_is_refused_with_401_invalid_client_and_a_challenge() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let response = exchange(&app, &client.with_secret("not-the-secret"), &params, &request).await;
    assert!(response.headers().contains_key("www-authenticate"), "RFC 6749 §5.2: a 401 carries a challenge");
    assert_eq!(oauth_error(response).await, (401, "invalid_client".to_owned()));
}

#[tokio::test]
async fn token_responses_are_never_cached() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let success = exchange(&app, &client, &params, &request).await;
    let refusal = exchange(&app, &client, &params, &request).await;
    let unauthenticated = exchange(&app, &client.with_secret("wrong"), &params, &request).await;
    for (response, status) in [(success, 200), (refusal, 400), (unauthenticated, 401)] {
        assert_eq!(response.status(), status);
        let cache_control = response.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
        assert!(cache_control.is_some_and(|v| v.contains("no-store")), "a {status} answer is not no-store");
    }
}

/// Reference #35: of 20 parallel redemptions of one code at most one succeeds, and since the others are
/// reuse, the tokens it got are revoked.
#[tokio::test]
async fn parallel_redemptions_of_one_code_succeed_at_most_once_then_revoke() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let attempts = (0..20).map(|_| exchange(&app, &client, &params, &request));
    let responses = futures_util::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for response in responses {
        if response.status() == 200 {
            winners.push(tokens_from(response).await);
        } else {
            assert_eq!(oauth_error(response).await, (400, "invalid_grant".to_owned()));
        }
    }
    assert!(winners.len() <= 1, "{} redemptions succeeded", winners.len());
    for tokens in winners {
        assert_inactive(&introspect(&app, &client, &field(&tokens, "access_token")).await);
    }
}

/// RFC 6749 §4.1.2: a code lives 60 s.
#[tokio::test]
async fn a_code_older_than_its_60_s_is_refused_with_invalid_grant() {
    let (app, client, clock) = setup_with_clock().await;
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    clock.advance(Duration::from_secs(61));
    let late = exchange(&app, &client, &params, &request).await;
    assert_eq!(oauth_error(late).await, (400, "invalid_grant".to_owned()));
}

/// RFC 6749 §2.3, OIDC Registration `token_endpoint_auth_method`: a client authenticates the way it
/// registered; its right secret sent another way is `invalid_client`.
#[tokio::test]
async fn a_client_authenticating_by_a_method_it_did_not_register_is_refused_with_invalid_client() {
    let (app, client) = setup().await;
    assert_eq!(client.auth_method, AuthMethod::ClientSecretBasic);
    let request = AuthRequest::new(&client);
    let params = authorize(&app, &request).await;
    let in_the_body = TestClient { auth_method: AuthMethod::ClientSecretPost, ..client.clone() };
    let response = exchange(&app, &in_the_body, &params, &request).await;
    assert_eq!(oauth_error(response).await, (401, "invalid_client".to_owned()));
}
