//! The authorization code flow with PKCE end to end, with `openidconnect` validating the ID token, and the
//! shape of the tokens issued (OIDC Core §2, RFC 9068).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idp::domain::clients::ClientRegistration;
use openidconnect::core::CoreTokenType;
use openidconnect::{Nonce, OAuth2TokenResponse};

use crate::oauth::flow::{
    AuthRequest, EMAIL, id_token_claims, native_app, now, openid_login, register, secret_post_app, setup, tokens,
    tokens_for, user_id, verified_jwt, web_app,
};

#[tokio::test]
async fn confidential_client_completes_the_code_flow_with_a_valid_id_token() {
    let (app, client) = setup().await;
    let started = now();
    let login = openid_login(&app, &client).await;
    assert_eq!(login.claims.subject().as_str(), user_id(&app, EMAIL).await);
    assert_eq!(login.claims.nonce().map(Nonce::secret), Some(login.nonce.secret()));
    let auth_time = login.claims.auth_time().expect("auth_time").timestamp();
    assert!((started - 1..=now()).contains(&auth_time), "auth_time {auth_time} is the sign-in just made");
    assert_eq!(login.claims.access_token_hash(), Some(&login.expected_at_hash));
    assert_eq!(*login.tokens.token_type(), CoreTokenType::Bearer);
    assert!(login.tokens.expires_in().is_some_and(|d| d.as_secs() > 0));
    assert!(login.tokens.refresh_token().is_some(), "offline_access was granted");
}

#[tokio::test]
async fn public_client_completes_the_code_flow_with_pkce_alone() {
    let (app, _) = setup().await;
    let client = register(&app, native_app()).await;
    assert!(client.secret.is_none());
    let login = openid_login(&app, &client).await;
    assert_eq!(login.claims.subject().as_str(), user_id(&app, EMAIL).await);
    assert_eq!(login.claims.nonce().map(Nonce::secret), Some(login.nonce.secret()));
    assert!(login.claims.auth_time().is_some());
    assert_eq!(login.claims.access_token_hash(), Some(&login.expected_at_hash));
}

#[tokio::test]
async fn client_secret_post_client_completes_the_code_flow() {
    let (app, _) = setup().await;
    let client = register(&app, secret_post_app()).await;
    let login = openid_login(&app, &client).await;
    assert_eq!(login.claims.subject().as_str(), user_id(&app, EMAIL).await);
}

#[tokio::test]
async fn token_response_carries_bearer_type_expiry_and_granted_scope() {
    let (app, client) = setup().await;
    let body = tokens(&app, &client).await;
    assert!(body["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("bearer")), "{body}");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    let mut scope: Vec<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(scope, ["email", "offline_access", "openid", "profile"]);
}

#[tokio::test]
async fn no_refresh_token_is_issued_without_offline_access() {
    let (app, client) = setup().await;
    let body = tokens_for(&app, &client, &AuthRequest::new(&client).with("scope", "openid email")).await;
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");
}

#[tokio::test]
async fn id_token_names_the_user_session_and_email() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let body = tokens_for(&app, &client, &request).await;
    let (header, claims) = verified_jwt(&app, body["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    // `verified_jwt` checked iss, aud (the client id), exp and the signature.
    assert_eq!(claims["sub"], user_id(&app, EMAIL).await.as_str());
    assert_eq!(claims["nonce"], request.nonce.as_str());
    assert_eq!(claims["email"], EMAIL);
    assert!(claims["email_verified"].is_boolean(), "{claims}");
    for claim in ["iat", "exp", "auth_time"] {
        assert!(claims[claim].is_i64(), "{claim} in {claims}");
    }
    for claim in ["at_hash", "sid"] {
        assert!(claims[claim].as_str().is_some_and(|s| !s.is_empty()), "{claim} in {claims}");
    }
}

#[tokio::test]
async fn id_token_is_signed_with_the_algorithm_the_client_registered() {
    let (app, _) = setup().await;
    let client = register(&app, ClientRegistration { id_token_alg: Some("ES256".into()), ..web_app() }).await;
    let body = tokens(&app, &client).await;
    let (header, claims) = verified_jwt(&app, body["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    // OIDC Core §3.1.3.6: at_hash uses the hash of the ID token's algorithm (SHA-256 for ES256).
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body["access_token"].as_str().unwrap().as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
}

#[tokio::test]
async fn access_token_is_a_jwt_per_rfc_9068() {
    let (app, client) = setup().await;
    let body = tokens(&app, &client).await;
    let (header, claims) = verified_jwt(&app, body["access_token"].as_str().unwrap(), &app.base_url).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["iss"], app.base_url.as_str());
    assert_eq!(claims["aud"], app.base_url.as_str());
    assert_eq!(claims["sub"], user_id(&app, EMAIL).await.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], body["scope"]);
    assert!(claims["jti"].as_str().is_some_and(|s| !s.is_empty()), "{claims}");
    for claim in ["exp", "iat", "auth_time"] {
        assert!(claims[claim].is_i64(), "{claim} in {claims}");
    }
    assert!(claims["exp"].as_i64() > claims["iat"].as_i64());
    let id_token = id_token_claims(&app, &client, body["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["sid"], id_token["sid"], "the access token names the same session as the ID token");
    assert!(claims["sid"].is_string());
}
