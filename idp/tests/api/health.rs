//! Probes, the OpenAPI document, request ids and the headers of every answer.

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn readyz_answers_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db.close().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn openapi_document_describes_every_json_route() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    for path in ["/healthz", "/readyz", "/.well-known/openid-configuration", "/jwks"] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not in the OpenAPI document");
    }
    assert_eq!(app.get("/docs/").await.status(), 200, "Swagger UI is served");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_callers() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert!(response.headers().get("x-request-id").is_some_and(|v| !v.is_empty()));
    let response = app.browser.get(app.url("/healthz")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

/// The headers of the 404 that an unknown path answers.
async fn headers_of_a_404() -> reqwest::header::HeaderMap {
    spawn_app().await.headers_of("/no-such-path", 404).await
}

#[tokio::test]
async fn an_unknown_path_answers_404_with_a_request_id() {
    assert!(headers_of_a_404().await.get("x-request-id").is_some_and(|v| !v.is_empty()));
}

#[tokio::test]
async fn an_unknown_path_answers_404_with_nosniff() {
    assert_eq!(headers_of_a_404().await["x-content-type-options"], "nosniff");
}

/// ASVS 5 V3.4.1: an issuer served over https (behind the load balancer that ends TLS) tells browsers so.
#[tokio::test]
async fn an_https_issuers_answers_carry_strict_transport_security() {
    let app = spawn_app_with(&[("IDP_ISSUER", "https://id.example.com")]).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000");
}

#[tokio::test]
async fn a_plain_http_issuers_answers_carry_no_strict_transport_security() {
    let response = spawn_app().await.get("/healthz").await;
    assert!(response.headers().get("strict-transport-security").is_none());
}

/// On localhost it would hold every port of the developer's machine to https for a year.
#[tokio::test]
async fn an_https_issuer_on_localhost_sends_no_strict_transport_security() {
    let app = spawn_app_with(&[("IDP_ISSUER", "https://localhost:8443")]).await;
    assert!(app.get("/healthz").await.headers().get("strict-transport-security").is_none());
}
