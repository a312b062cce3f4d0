//! Introspection (RFC 7662) and revocation (RFC 7009).

use crate::helpers::TestApp;
use crate::oauth::flow::{
    EMAIL, assert_inactive, backchannel, field, introspect, json, refresh, resign_access_token, revoke, setup, tokens,
    tokens_and_another_client, user_id,
};

/// A POST of `token` to `path` with no client credentials.
async fn without_client_authentication(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    backchannel().post(app.url(path)).form(&[("token", token)]).send().await.unwrap()
}

#[tokio::test]
async fn active_token_introspects_with_scope_client_subject_and_expiry() {
    let (app, client) = setup().await;
    let body = tokens(&app, &client).await;
    let introspection = introspect(&app, &client, &field(&body, "access_token")).await;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["scope"], body["scope"]);
    assert_eq!(introspection["client_id"], client.id.as_str());
    assert_eq!(introspection["sub"], user_id(&app, EMAIL).await.as_str());
    assert!(introspection["exp"].is_i64(), "{introspection}");
}

#[tokio::test]
async fn introspection_is_active_before_and_inactive_after_revocation() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    assert_eq!(introspect(&app, &client, &access_token).await["active"], true);
    assert_eq!(revoke(&app, &client, &access_token).await.status(), 200);
    assert_inactive(&introspect(&app, &client, &access_token).await);
}

/// A user token's `jti` names its grant; one that names none (as before migration 0005) is not active.
#[tokio::test]
async fn a_user_token_whose_id_names_no_grant_introspects_as_inactive() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    let same = resign_access_token(&app, &access_token, |_| {});
    assert_eq!(introspect(&app, &client, &same).await["active"], true, "the same claims, signed again");
    let without_grant = resign_access_token(&app, &access_token, |claims| claims["jti"] = "no-grant".into());
    assert_inactive(&introspect(&app, &client, &without_grant).await);
}

#[tokio::test]
async fn garbage_token_introspects_as_exactly_inactive() {
    let (app, client) = setup().await;
    for token in ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        assert_inactive(&introspect(&app, &client, token).await);
    }
}

/// A token that names another issuer is not ours, whatever key signed it.
#[tokio::test]
async fn a_token_naming_another_issuer_introspects_as_exactly_inactive() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    let foreign = resign_access_token(&app, &access_token, |claims| claims["iss"] = "https://elsewhere.example".into());
    assert_inactive(&introspect(&app, &client, &foreign).await);
}

#[tokio::test]
async fn introspection_without_client_authentication_is_401() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    assert_eq!(without_client_authentication(&app, "/introspect", &access_token).await.status(), 401);
}

#[tokio::test]
async fn revoking_an_unknown_token_answers_200() {
    let (app, client) = setup().await;
    assert_eq!(revoke(&app, &client, "never-issued").await.status(), 200);
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_access_tokens() {
    let (app, client) = setup().await;
    let body = tokens(&app, &client).await;
    assert_eq!(revoke(&app, &client, &field(&body, "refresh_token")).await.status(), 200);
    assert_inactive(&introspect(&app, &client, &field(&body, "access_token")).await);
    let (status, error) = json(refresh(&app, &client, &field(&body, "refresh_token"), None).await).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")));
}

/// RFC 7009 §2.1: a client revokes only tokens issued to it. Another client's request is answered 200, as
/// for an unknown token, and revokes nothing.
#[tokio::test]
async fn revoking_another_clients_tokens_leaves_them_working() {
    let (app, client, other, body) = tokens_and_another_client().await;
    for token in [field(&body, "access_token"), field(&body, "refresh_token")] {
        assert_eq!(revoke(&app, &other, &token).await.status(), 200);
    }
    assert_eq!(introspect(&app, &client, &field(&body, "access_token")).await["active"], true);
    assert_eq!(refresh(&app, &client, &field(&body, "refresh_token"), None).await.status(), 200);
}

#[tokio::test]
async fn revocation_without_client_authentication_is_401() {
    let (app, client) = setup().await;
    let access_token = field(&tokens(&app, &client).await, "access_token");
    assert_eq!(without_client_authentication(&app, "/revoke", &access_token).await.status(), 401);
    assert_eq!(introspect(&app, &client, &access_token).await["active"], true);
}

/// Resource servers introspect the access tokens of the apps that call them.
#[tokio::test]
async fn another_client_introspects_an_access_token_as_active() {
    let (app, client, resource_server, body) = tokens_and_another_client().await;
    let access = introspect(&app, &resource_server, &field(&body, "access_token")).await;
    assert_eq!(access["active"], true, "{access}");
    assert_eq!(access["client_id"], client.id.as_str());
}

/// A refresh token never reaches a resource server, so another client learns nothing of it; its own client
/// still sees it active.
#[tokio::test]
async fn another_client_introspects_a_refresh_token_as_exactly_inactive() {
    let (app, client, other, body) = tokens_and_another_client().await;
    assert_inactive(&introspect(&app, &other, &field(&body, "refresh_token")).await);
    assert_eq!(introspect(&app, &client, &field(&body, "refresh_token")).await["active"], true);
}
