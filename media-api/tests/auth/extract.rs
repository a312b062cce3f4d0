//! The `Authenticated` extractor and the RFC 6750 responses, through a real API server spoken to over HTTP.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use idp::domain::keys::SigningAlgorithm;
use idp::domain::tokens::AccessTokenClaims;
use media_api::auth::{AuthError, Authenticated, Validator};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use crate::helpers::{LEEWAY, TestIssuer, TestKey};

async fn read_media(Authenticated(principal): Authenticated) -> Result<String, AuthError> {
    principal.require_scope("media.read")?;
    Ok(principal.sub.clone())
}

async fn delete_media(Authenticated(principal): Authenticated) -> Result<String, AuthError> {
    principal.require_scope("media.delete")?;
    Ok("deleted".into())
}

/// An API with two routes, served on 127.0.0.1:0; returns its URL.
async fn spawn_api(validator: Arc<Validator>) -> String {
    let app = Router::new().route("/media", get(read_media).delete(delete_media)).with_state(validator);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Api {
    url: String,
    key: TestKey,
    issuer: TestIssuer,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let key = TestKey::generate(SigningAlgorithm::Es256);
        let issuer = TestIssuer::start(&[&key]).await;
        let url = spawn_api(Arc::new(issuer.validator().await)).await;
        Api { url, key, issuer, http: reqwest::Client::new() }
    }

    fn media(&self) -> String {
        format!("{}/media", self.url)
    }

    /// A token valid now by the system clock, which the extractor uses, signed with `changes` to its claims.
    fn token(&self, changes: impl FnOnce(i64, AccessTokenClaims) -> AccessTokenClaims) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let valid_now = AccessTokenClaims { iat: now, exp: now + 300, auth_time: Some(now), ..self.issuer.claims() };
        self.key.sign(&changes(now, valid_now))
    }

    fn valid_token(&self) -> String {
        self.token(|_, claims| claims)
    }
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers().get(WWW_AUTHENTICATE).unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn request_with_a_valid_token_reaches_the_route() {
    let api = Api::start().await;
    let response = api.http.get(api.media()).bearer_auth(api.valid_token()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "user-1");
}

#[tokio::test]
async fn request_without_a_token_gets_a_bare_bearer_challenge() {
    let api = Api::start().await;
    let response = api.http.get(api.media()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer");
}

#[tokio::test]
async fn request_with_an_expired_token_gets_invalid_token() {
    let api = Api::start().await;
    let token = api.token(|now, claims| AccessTokenClaims { iat: now - 600, exp: now - LEEWAY - 1, ..claims });
    let response = api.http.get(api.media()).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer error=\"invalid_token\", error_description=\"the access token expired\"");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn request_lacking_the_scope_gets_insufficient_scope() {
    let api = Api::start().await;
    let response = api.http.delete(api.media()).bearer_auth(api.valid_token()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = challenge(&response);
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.ends_with("scope=\"media.delete\""), "{challenge}");
}

#[tokio::test]
async fn token_in_the_query_string_is_not_read() {
    let api = Api::start().await;
    let response = api.http.get(format!("{}?access_token={}", api.media(), api.valid_token())).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer");
}

#[tokio::test]
async fn error_description_does_not_leak_internals() {
    let api = Api::start().await;
    let cases = [
        ("eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln".to_owned(), "garbage"),
        // Signed by the issuer's key, so that it reaches the claims parser, whose message names line and column.
        (api.key.sign_value("at+jwt", &serde_json::json!("not claims")), "claims that do not parse"),
    ];
    for (token, reason) in cases {
        let response = api.http.get(api.media()).header(AUTHORIZATION, format!("Bearer {token}"));
        let response = response.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{reason}");
        let body = response.text().await.unwrap();
        for internal in ["serde", "Error", "line", "column", "127.0.0.1", "jwks"] {
            assert!(!body.contains(internal), "{reason}: {internal} in {body}");
        }
    }
}
